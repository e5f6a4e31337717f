package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
	"golang.org/x/text/width"

	"github.com/serfd/serfd/ctl"
)

// Terminal control sequences of the live view. They go straight to the
// terminal, never through safeWriter, which would escape them: everything
// else on the screen passes through safeWriter first (watcher.content).
const (
	altScreenOn  = "\x1b[?1049h"
	altScreenOff = "\x1b[?1049l"
	cursorHide   = "\x1b[?25l"
	cursorShow   = "\x1b[?25h"
	cursorHome   = "\x1b[H"
	eraseLine    = "\x1b[K" // from the cursor to the end of the line
	eraseBelow   = "\x1b[J" // from the cursor to the end of the screen
)

const (
	// watchInterval is how often members -watch fetches the members
	// when no member event asks for it sooner (-interval).
	watchInterval = 2 * time.Second
	// watchRetry is how often, at most, it tries serfd again while serfd
	// does not answer (never less often than -interval).
	watchRetry = time.Second
	// watchFetchTimeout bounds one fetch of the members.
	watchFetchTimeout = 10 * time.Second
	// defaultRows and defaultCols are the screen when the terminal does
	// not say its size.
	defaultRows, defaultCols = 24, 80
	// minEventRows is how many recent events the live view shows, when
	// there are that many, before it shortens the member table.
	minEventRows = 3
	// keyPoll is how long the live view's key reader waits for a key
	// before it looks whether the view has ended.
	keyPoll = 200 * time.Millisecond
	// eventTypeWidth is the column of event types: the longest, member-failed
	// and member-update.
	eventTypeWidth = len("member-update")
)

// termSize is the size of the terminal w is, from TIOCGWINSZ; ok is false
// when w is no terminal or the terminal does not say.
func termSize(w io.Writer) (rows, cols int, ok bool) {
	f, isFile := w.(*os.File)
	if !isFile {
		return 0, 0, false
	}
	raw, err := f.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var ws *unix.Winsize
	var werr error
	if err := raw.Control(func(fd uintptr) { ws, werr = unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ) }); err != nil || werr != nil {
		return 0, 0, false
	}
	if ws.Row == 0 || ws.Col == 0 {
		return 0, 0, false
	}
	return int(ws.Row), int(ws.Col), true
}

// watchEvent is one event as the live view shows it.
type watchEvent struct {
	at     time.Time
	typ    string // member-join, ..., user, query; "dropped" for records lost
	detail string
}

// eventOf picks, out of serfd's log stream, the record serfd logs for each
// event gossip delivers: level INFO, with SERF_EVENT (the event's type) and
// without HANDLER (the records of handler runs name their handler).
func eventOf(rec ctl.LogRecord) (watchEvent, bool) {
	typ := rec.Attrs["SERF_EVENT"]
	if typ == "" || rec.Level != "INFO" {
		return watchEvent{}, false
	}
	if _, ok := rec.Attrs["HANDLER"]; ok {
		return watchEvent{}, false
	}
	ev := watchEvent{at: rec.Time, typ: typ, detail: rec.Message}
	switch {
	case typ == "user":
		ev.detail = rec.Attrs["SERF_USER_EVENT"]
		if n := rec.Attrs["PAYLOAD_BYTES"]; n != "" && n != "0" {
			ev.detail += " (" + n + " bytes)"
		}
	case typ == "query":
		ev.detail = rec.Attrs["SERF_QUERY_NAME"]
		if src := rec.Attrs["SERF_QUERY_SOURCE"]; src != "" {
			ev.detail += " from " + src
		}
	case strings.HasPrefix(typ, "member-"):
		ev.detail = strings.ReplaceAll(rec.Attrs["SERF_MEMBERS"], ",", ", ")
	}
	return ev, true
}

// eventStatus is the member status whose colour an event type takes.
var eventStatus = map[string]string{"member-join": "alive", "member-failed": "failed", "member-leave": "left", "member-reap": "left"}

// line is the event as one line: time, type (coloured when colour is set)
// and what it is about.
func (e watchEvent) line(colour bool) string {
	typ := paint(colour, statusColour(eventStatus[e.typ]), e.typ)
	pad := strings.Repeat(" ", max(eventTypeWidth-len(e.typ), 0))
	return e.at.Local().Format("15:04:05") + "  " + typ + pad + "  " + e.detail
}

// fitLine cuts line to at most width columns, counting each rune as the
// columns a terminal gives it (runeCols) and serfctl's own colour
// sequences as none; a cut line that held a colour ends with sgrReset so
// the colour does not run on.
func fitLine(line string, width int) string {
	cols, coloured := 0, false
	for i := 0; i < len(line); {
		if n := ownSequenceAt([]byte(line[i:])); n > 0 {
			i, coloured = i+n, true
			continue
		}
		r, size := utf8.DecodeRuneInString(line[i:])
		if cols+runeCols(r) > width {
			if coloured {
				return line[:i] + sgrReset
			}
			return line[:i]
		}
		i += size
		cols += runeCols(r)
	}
	return line
}

// runeCols is how many columns a terminal gives r: two for East Asian wide
// and full-width characters, none for combining marks, else one.
func runeCols(r rune) int {
	switch {
	case unicode.In(r, unicode.Mn, unicode.Me):
		return 0
	case r < 0x1100:
		return 1
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// streamNote is what the event stream tells the view: an event, that the
// stream (re)started, or why it stopped (it is retried).
type streamNote struct {
	ev      *watchEvent
	started bool
	err     error
}

// watcher is members -watch: the member table and the recent events,
// redrawn in place on a terminal (live), else printed afresh as a block on
// each change.
type watcher struct {
	a        *app
	filter   *memberFilter
	detailed bool
	interval time.Duration
	live     bool
	colour   bool
	rows     int
	cols     int

	members   []ctl.Member
	at        time.Time // when members were fetched
	down      error     // why serfd did not answer the last fetch; nil when it did
	streamErr error     // why serfd refused the event stream; nil once it accepts it
	// events are, live, the last rows events; otherwise those not printed yet.
	events []watchEvent
	// Not live: the table printed last, whether the next block is printed
	// even if nothing changed (after serfd came back), and what was
	// reported wrong on stderr last ("down", or the status).
	printed  string
	reprint  bool
	reported string
}

// watch runs members -watch until SIGINT or SIGTERM. Only a first fetch
// that fails ends it with an error: later, serfd going away (a restart)
// is shown and waited out.
func (a *app) watch(filter *memberFilter, detailed bool, interval time.Duration) int {
	c, stop := interruptible()
	defer stop()
	w := &watcher{a: a, filter: filter, detailed: detailed, interval: interval,
		live: isTTY(a.terminal) && os.Getenv("TERM") != "dumb", colour: a.colour()}
	first, cancel := context.WithTimeout(c, watchFetchTimeout)
	ms, err := a.fetchMembers(first, filter)
	cancel()
	if c.Err() != nil {
		return exitOK
	}
	if err != nil {
		return a.fail("members", err)
	}
	w.members, w.at = ms, time.Now()
	return w.run(c)
}

func (w *watcher) run(parent context.Context) int {
	var follower sync.WaitGroup
	defer follower.Wait()
	c, cancel := context.WithCancel(parent)
	defer cancel()

	var winch chan os.Signal
	if w.live {
		w.resize()
		winch = make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		defer signal.Stop(winch)
		if _, err := io.WriteString(w.a.terminal, altScreenOn+cursorHide); err != nil {
			return w.a.fail("write output", err)
		}
		defer io.WriteString(w.a.terminal, cursorShow+altScreenOff)
		if restore := quitKeys(c, w.a.stdin, cancel); restore != nil {
			defer restore()
		}
	}

	notes := make(chan streamNote, 64)
	kick := make(chan struct{}, 1)
	follower.Add(1)
	go func() {
		defer follower.Done()
		w.follow(c, notes, kick)
	}()

	retry := min(w.interval, watchRetry)
	tick := time.NewTimer(w.interval)
	defer tick.Stop()
	for {
		if err := w.draw(); err != nil {
			return w.a.fail("write output", err)
		}
		refresh := false
		select {
		case <-c.Done():
			return exitOK
		case <-winch:
			w.resize()
		case n := <-notes:
			refresh = w.note(n)
			for more := true; more; {
				select {
				case n := <-notes:
					refresh = w.note(n) || refresh
				default:
					more = false
				}
			}
		case <-tick.C:
			refresh = true
		}
		if !refresh {
			continue
		}
		wasDown := w.down != nil
		w.fetch(c)
		if c.Err() != nil {
			return exitOK
		}
		next := w.interval
		switch {
		case w.down != nil:
			next = retry
		case wasDown:
			// serfd is back: reopen the event stream now, not at its
			// next retry, and show the table even if it is the same.
			w.reprint = true
			select {
			case kick <- struct{}{}:
			default:
			}
		}
		tick.Reset(next)
	}
}

// quitKeys, when in is a terminal, turns its echo and line editing off
// (signals stay on: Ctrl-C still sends SIGINT) and calls quit once q or Q
// is typed, until c ends. It returns what stops that and puts the terminal
// back as it was, or nil when in is no terminal.
func quitKeys(c context.Context, in io.Reader, quit func()) (restore func()) {
	f, ok := in.(*os.File)
	if !ok {
		return nil
	}
	fd := int(f.Fd())
	was, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil
	}
	keys := *was
	keys.Lflag &^= unix.ICANON | unix.ECHO
	keys.Cc[unix.VMIN], keys.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &keys); err != nil {
		return nil
	}
	kc, stop := context.WithCancel(c)
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		buf := make([]byte, 64)
		for kc.Err() == nil {
			// Poll rather than block in read, so that the reader ends
			// with the view and nothing is left reading the terminal.
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int(keyPoll/time.Millisecond))
			if errors.Is(err, unix.EINTR) || err == nil && n == 0 {
				continue
			}
			if err != nil {
				return
			}
			n, err = unix.Read(fd, buf)
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			if err != nil || n == 0 { // the terminal hung up
				return
			}
			if bytes.ContainsAny(buf[:n], "qQ") {
				quit()
				return
			}
		}
	}()
	return func() {
		stop()
		reader.Wait()
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, was)
	}
}

// follow streams serfd's log records into notes, keeping the event
// records, until c ends; a stream that ends or is refused is tried again
// after watchRetry, or at once when kick says serfd is back. A record not
// newer than the last event passed on is one the stream's replay of recent
// records repeats, and is skipped.
func (w *watcher) follow(c context.Context, notes chan<- streamNote, kick <-chan struct{}) {
	send := func(n streamNote) bool {
		select {
		case notes <- n:
			return true
		case <-c.Done():
			return false
		}
	}
	var last time.Time
	for {
		err := w.a.sock.MonitorStarted(c, "info", func() { send(streamNote{started: true}) }, func(rec ctl.LogRecord) error {
			if rec.Dropped > 0 {
				n := rec.Dropped
				if !send(streamNote{ev: &watchEvent{at: rec.Time, typ: "dropped",
					detail: fmt.Sprintf("%d log records lost: serfctl read too slowly; events may be missing", n)}}) {
					return c.Err()
				}
			}
			ev, ok := eventOf(rec)
			if !ok || !rec.Time.After(last) {
				return nil
			}
			last = rec.Time
			if !send(streamNote{ev: &ev}) {
				return c.Err()
			}
			return nil
		})
		if c.Err() != nil || !send(streamNote{err: err}) {
			return
		}
		t := time.NewTimer(watchRetry)
		select {
		case <-c.Done():
			t.Stop()
			return
		case <-t.C:
		case <-kick:
			t.Stop()
		}
	}
}

// note takes what the stream said and reports whether the members should
// be fetched now: a member event changed them, or the stream broke (serfd
// may be gone).
func (w *watcher) note(n streamNote) bool {
	switch {
	case n.started:
		w.streamErr = nil
	case n.err != nil:
		// A refusal is shown; a broken connection shows as serfd being
		// down once the fetch it triggers fails.
		if e := (*ctl.Error)(nil); errors.As(n.err, &e) {
			w.streamErr = n.err
		}
		return true
	case n.ev != nil:
		w.events = append(w.events, *n.ev)
		if w.live && len(w.events) > w.rows {
			w.events = w.events[len(w.events)-w.rows:]
		}
		return strings.HasPrefix(n.ev.typ, "member-")
	}
	return false
}

// fetch fetches the members; a failure leaves the last ones shown and
// says why.
func (w *watcher) fetch(c context.Context) {
	fc, cancel := context.WithTimeout(c, watchFetchTimeout)
	defer cancel()
	ms, err := w.a.fetchMembers(fc, w.filter)
	switch {
	case c.Err() != nil:
	case err != nil:
		w.down = err
	default:
		w.members, w.at, w.down = ms, time.Now(), nil
	}
}

// resize reads the terminal's size again and keeps as many recent events
// as it has rows.
func (w *watcher) resize() {
	var ok bool
	if w.rows, w.cols, ok = termSize(w.a.terminal); !ok {
		w.rows, w.cols = defaultRows, defaultCols
	}
	if len(w.events) > w.rows {
		w.events = w.events[len(w.events)-w.rows:]
	}
}

// summary counts the members shown: "3 members (2 alive, 1 failed)".
func (w *watcher) summary() string {
	counts := map[string]int{}
	for _, m := range w.members {
		counts[m.Status]++
	}
	var parts []string
	for _, s := range []string{"alive", "leaving", "left", "failed"} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
			delete(counts, s)
		}
	}
	for s, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	noun := "members"
	if len(w.members) == 1 {
		noun = "member"
	}
	if len(parts) == 0 {
		return "0 members"
	}
	return fmt.Sprintf("%d %s (%s)", len(w.members), noun, strings.Join(parts, ", "))
}

// status says what is wrong, "" when nothing is.
func (w *watcher) status() string {
	switch {
	case w.down != nil:
		return fmt.Sprintf("reconnecting to serfd at %s... (%v)", w.a.sock.Socket(), w.down)
	case w.streamErr != nil:
		return fmt.Sprintf("no events from serfd at %s: %v; retrying", w.a.sock.Socket(), w.streamErr)
	}
	return ""
}

// table is the member table as lines, each escaped (safeWriter).
func (w *watcher) table() []string {
	var b bytes.Buffer
	_ = writeMembers(safeWriter{&b}, w.members, w.colour, w.detailed)
	if b.Len() == 0 {
		return []string{"(no members to show)"}
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// escaped is s as safeWriter writes it.
func escaped(s string) string {
	var b bytes.Buffer
	_, _ = safeWriter{&b}.Write([]byte(s))
	return b.String()
}

func (w *watcher) draw() error {
	if w.live {
		_, err := w.a.terminal.Write(w.frame())
		return err
	}
	return w.printBlock()
}

// content is what the live view shows, one escaped line each, fitted to
// the screen's rows: a title (or what is wrong), a line for a refused
// event stream, the member table, and as many recent events as fit below
// it, newest last. A table too long for the screen is cut to leave room
// for a few events.
func (w *watcher) content() []string {
	title := escaped(fmt.Sprintf("serfd at %s: %s  %s", w.a.sock.Socket(), w.summary(), w.at.Local().Format("15:04:05")))
	note := ""
	if w.down != nil {
		title = paint(w.colour, sgrYellow, escaped(w.status()))
	} else if w.streamErr != nil {
		note = paint(w.colour, sgrRed, escaped(w.status()))
	}
	table := w.table()
	lines := []string{title, note}
	avail := w.rows - len(lines) - 2 // the table, a blank line, the heading, the events
	evRows := min(len(w.events), minEventRows)
	if len(table)+evRows > avail {
		keep := max(avail-evRows-1, 0)
		more := len(table) - keep
		table = append(table[:keep:keep], fmt.Sprintf("... and %d more (a taller terminal shows them)", more))
	}
	lines = append(lines, table...)
	lines = append(lines, "", "Recent events")
	evRows = min(len(w.events), max(w.rows-len(lines), 0))
	for _, e := range w.events[len(w.events)-evRows:] {
		lines = append(lines, escaped(e.line(w.colour)))
	}
	if len(w.events) == 0 {
		lines = append(lines, "(none yet)")
	}
	if len(lines) > w.rows {
		lines = lines[:w.rows]
	}
	return lines
}

// frame is one redraw of the live view: from the top left, each line cut
// to the width (one column short of it: a line filling the last column
// would leave the cursor waiting to wrap), the rest of each line and of
// the screen erased.
func (w *watcher) frame() []byte {
	var f bytes.Buffer
	f.WriteString(cursorHome)
	for i, l := range w.content() {
		if i > 0 {
			f.WriteString("\r\n")
		}
		f.WriteString(fitLine(l, w.cols-1))
		f.WriteString(eraseLine)
	}
	f.WriteString(eraseBelow)
	return f.Bytes()
}

// printBlock prints, when not on a terminal, a block when something
// changed: a title line with the time and the counts, the member table,
// then "Events:" and the events since the last block, if any; blocks are
// separated by a blank line. What is wrong (serfd gone, the event stream
// refused) and that it is right again go to stderr, once each.
func (w *watcher) printBlock() error {
	// Reported once each: serfd gone (with the first reason), each
	// refusal of the stream, and that all is well again.
	kind := w.status()
	if w.down != nil {
		kind = "down"
	}
	if kind != w.reported {
		switch {
		case kind != "":
			fmt.Fprintf(w.a.stderr, "serfctl members: %s\n", w.status())
		default:
			fmt.Fprintf(w.a.stderr, "serfctl members: serfd at %s answers again\n", w.a.sock.Socket())
		}
		w.reported = kind
	}
	if w.down != nil {
		return nil
	}
	table := strings.Join(w.table(), "\n")
	if table == w.printed && len(w.events) == 0 && !w.reprint {
		return nil
	}
	var b strings.Builder
	if w.printed != "" {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%s %s\n%s\n", w.at.Local().Format("15:04:05"), w.summary(), table)
	if len(w.events) > 0 {
		b.WriteString("Events:\n")
		for _, e := range w.events {
			b.WriteString(e.line(w.colour) + "\n")
		}
	}
	// The table is escaped already; the rest is escaped here.
	if _, err := io.WriteString(w.a.stdout, b.String()); err != nil {
		return err
	}
	w.printed, w.events, w.reprint = table, nil, false
	return nil
}
