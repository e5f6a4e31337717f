package soak

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// Watcher asks every node for its member list every Every and logs each
// round as one MembersRound line; the checker measures re-convergence and
// stuck nodes from these rounds.
type Watcher struct {
	Targets     []Target
	Every       time.Duration
	CallTimeout time.Duration
	Out         io.Writer
}

// Run polls until ctx is done; it returns nil then, or the first error
// writing the log.
func (w *Watcher) Run(ctx context.Context) error {
	if len(w.Targets) == 0 || w.Every <= 0 || w.CallTimeout <= 0 {
		return errors.New("watcher: need targets, a period and a call timeout")
	}
	out := &lineWriter{w: w.Out}
	t := time.NewTicker(w.Every)
	defer t.Stop()
	for {
		if err := out.write(Poll(ctx, w.Targets, w.CallTimeout)); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll asks every target for its members at once and returns the round,
// timed at its start.
func Poll(ctx context.Context, targets []Target, timeout time.Duration) MembersRound {
	round := MembersRound{T: time.Now(), Views: map[string]map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() {
			c, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			resp, err := t.Client.Members(c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if round.Errors == nil {
					round.Errors = map[string]string{}
				}
				round.Errors[t.Name] = err.Error()
				return
			}
			view := make(map[string]string, len(resp.Members))
			for _, m := range resp.Members {
				view[m.Name] = m.Status
			}
			round.Views[t.Name] = view
		})
	}
	wg.Wait()
	return round
}

// AllAlive reports whether every target answered the round and sees every
// target alive.
func AllAlive(round MembersRound, targets []Target) bool {
	hosts := make([]string, len(targets))
	for i, t := range targets {
		hosts[i] = t.Name
	}
	return allAlive(round, hosts, nil)
}
