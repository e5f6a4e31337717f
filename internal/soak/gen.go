package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/serfd/serfd/ctl"
)

// Target is one node the generator and the watcher talk to.
type Target struct {
	Name   string
	Client *ctl.Client
}

// Generator sends user events with unique ids (EventName, the id as the
// payload) to random nodes at a steady rate, and queries (QueryName) now
// and then, and logs the outcome of every call as one JSON line.
type Generator struct {
	Targets     []Target
	Rate        float64       // events per second
	QueryEvery  time.Duration // 0: no queries
	QueryWait   time.Duration // the queries' timeout
	CallTimeout time.Duration // a call not answered by then is Unknown
	MaxInFlight int           // calls at once; the rate drops when reached
	Events      io.Writer     // EventRecord lines
	Queries     io.Writer     // QueryRecord lines
	Rand        *rand.Rand
}

// lineWriter writes one JSON value per line with one Write call, from any
// goroutine.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(append(b, '\n'))
	return err
}

// Run sends until ctx is done, then waits for the calls in flight (each
// bounded by CallTimeout) and returns. It returns early with the first
// error writing a log.
func (g *Generator) Run(ctx context.Context) error {
	if len(g.Targets) == 0 || g.Rate <= 0 || g.MaxInFlight <= 0 || g.CallTimeout <= 0 {
		return errors.New("generator: need targets, a rate, a call timeout and MaxInFlight")
	}
	events := &lineWriter{w: g.Events}
	queries := &lineWriter{w: g.Queries}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, g.MaxInFlight)
	fail := func(err error) {
		if err != nil {
			cancel(fmt.Errorf("write generator log: %w", err))
		}
	}
	eventTick := time.NewTicker(time.Duration(float64(time.Second) / g.Rate))
	defer eventTick.Stop()
	var queryTick <-chan time.Time
	if g.QueryEvery > 0 {
		t := time.NewTicker(g.QueryEvery)
		defer t.Stop()
		queryTick = t.C
	}
	nEvent, nQuery := 0, 0
	for {
		var start func()
		select {
		case <-ctx.Done():
			wg.Wait()
			if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		case <-eventTick.C:
			nEvent++
			id, t := fmt.Sprintf("e%06d", nEvent), g.pick()
			start = func() { fail(events.write(g.event(t, id))) }
		case <-queryTick:
			nQuery++
			id, t := fmt.Sprintf("q%05d", nQuery), g.pick()
			start = func() { fail(queries.write(g.query(t, id))) }
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			start()
		}()
	}
}

func (g *Generator) pick() Target { return g.Targets[g.Rand.IntN(len(g.Targets))] }

// event makes one API call; the call gets its own deadline, not ctx, so
// that stopping the generator does not turn calls in flight into Unknown.
func (g *Generator) event(t Target, id string) EventRecord {
	c, cancel := context.WithTimeout(context.Background(), g.CallTimeout)
	defer cancel()
	rec := EventRecord{ID: id, Host: t.Name, Sent: time.Now()}
	_, err := t.Client.Event(c, ctl.EventRequest{Name: EventName, Payload: []byte(id)})
	rec.Done = time.Now()
	rec.Outcome, rec.Status = outcome(err)
	if err != nil {
		rec.Error = err.Error()
	}
	return rec
}

func (g *Generator) query(t Target, id string) QueryRecord {
	c, cancel := context.WithTimeout(context.Background(), g.CallTimeout+g.QueryWait)
	defer cancel()
	rec := QueryRecord{ID: id, Host: t.Name, Sent: time.Now()}
	req := ctl.QueryRequest{Name: QueryName, Payload: []byte(id), Timeout: g.QueryWait.String()}
	err := t.Client.Query(c, req, func(qr ctl.QueryRecord) error {
		switch qr.Type {
		case ctl.QueryStarted:
			rec.Expected = qr.Expected
		case ctl.QueryAck:
			rec.Acks++
		case ctl.QueryResponse:
			rec.Responses++
		}
		return nil
	})
	rec.Done = time.Now()
	rec.Outcome, _ = outcome(err)
	if err != nil {
		rec.Error = err.Error()
	}
	return rec
}

// outcome classifies a call's error: nil is Accepted; an error answer, or
// no connection at all (nothing was sent), is Refused; anything else (a
// timeout, a connection cut after the request went out) is Unknown, since
// the node may have acted on it.
func outcome(err error) (string, int) {
	var e *ctl.Error
	switch {
	case err == nil:
		return Accepted, 0
	case errors.As(err, &e):
		return Refused, e.Status
	case strings.HasPrefix(err.Error(), "serfd is not running"):
		return Refused, 0
	}
	return Unknown, 0
}
