package gossip

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// snapKind is the kind of a snapshot record.
type snapKind uint8

const (
	snapNone       snapKind = iota // blank, comment or legacy line: nothing to do
	snapAlive                      // name, addr
	snapNotAlive                   // name
	snapClock                      // n
	snapEventClock                 // n
	snapQueryClock                 // n
	snapLeave
	snapFailed // name, addr, at
	snapLeft   // name, addr, at
)

// snapRecord is one line of the snapshot file.
type snapRecord struct {
	kind snapKind
	name string
	addr string // "ip:port", normalized
	n    uint64
	at   int64 // failed and left: when, in Unix seconds
}

// line returns the record as a snapshot line, without the newline.
func (r snapRecord) line() string {
	switch r.kind {
	case snapAlive:
		return "alive: " + r.name + " " + r.addr
	case snapNotAlive:
		return "not-alive: " + r.name
	case snapClock:
		return "clock: " + strconv.FormatUint(r.n, 10)
	case snapEventClock:
		return "event-clock: " + strconv.FormatUint(r.n, 10)
	case snapQueryClock:
		return "query-clock: " + strconv.FormatUint(r.n, 10)
	case snapLeave:
		return "leave"
	case snapFailed, snapLeft:
		return departurePrefix[r.kind] + r.name + " " + r.addr + " " + time.Unix(r.at, 0).UTC().Format(time.RFC3339)
	}
	return ""
}

// departurePrefix starts the line of a failed or left record. Neither
// prefix starts any line older readers know, so they skip these lines.
var departurePrefix = map[snapKind]string{snapFailed: "failed: ", snapLeft: "left: "}

// parseDeparture parses the rest of a failed or left line, after its
// prefix: "NAME IP:PORT TIME", NAME possibly with spaces, TIME in RFC 3339.
func parseDeparture(kind snapKind, rest string) (snapRecord, error) {
	what := strings.TrimSuffix(departurePrefix[kind], ": ")
	i := strings.LastIndexByte(rest, ' ')
	if i < 0 {
		return snapRecord{}, fmt.Errorf("%s record without a time", what)
	}
	rest, stamp := rest[:i], rest[i+1:]
	at, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		return snapRecord{}, fmt.Errorf("%s record: %w", what, err)
	}
	// What line writes must parse back: a year of four digits in UTC.
	if y := at.UTC().Year(); y < 1970 || y > 9999 {
		return snapRecord{}, fmt.Errorf("%s record: time %s out of range", what, stamp)
	}
	i = strings.LastIndexByte(rest, ' ')
	if i < 0 {
		return snapRecord{}, fmt.Errorf("%s record without an address", what)
	}
	name, addr := rest[:i], rest[i+1:]
	if name == "" {
		return snapRecord{}, fmt.Errorf("%s record without a name", what)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return snapRecord{}, fmt.Errorf("%s record for %q: %w", what, name, err)
	}
	return snapRecord{kind: kind, name: name, addr: ap.String(), at: at.Unix()}, nil
}

// parseSnapshotLine parses one line (without its newline). It never panics;
// a line it does not understand is an error.
func parseSnapshotLine(line string) (snapRecord, error) {
	if strings.ContainsAny(line, "\r\n") {
		return snapRecord{}, errors.New("line contains a line break")
	}
	switch {
	case line == "" || strings.HasPrefix(line, "#"):
		return snapRecord{}, nil
	case line == "leave":
		return snapRecord{kind: snapLeave}, nil
	case strings.HasPrefix(line, "alive: "):
		rest := line[len("alive: "):]
		i := strings.LastIndexByte(rest, ' ')
		if i < 0 {
			return snapRecord{}, errors.New("alive record without an address")
		}
		name, addr := rest[:i], rest[i+1:]
		if name == "" {
			return snapRecord{}, errors.New("alive record without a name")
		}
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return snapRecord{}, fmt.Errorf("alive record for %q: %w", name, err)
		}
		return snapRecord{kind: snapAlive, name: name, addr: ap.String()}, nil
	case strings.HasPrefix(line, "not-alive: "):
		name := line[len("not-alive: "):]
		if name == "" {
			return snapRecord{}, errors.New("not-alive record without a name")
		}
		return snapRecord{kind: snapNotAlive, name: name}, nil
	case strings.HasPrefix(line, "coordinate: "): // written by old Serf versions
		return snapRecord{}, nil
	case strings.HasPrefix(line, departurePrefix[snapFailed]):
		return parseDeparture(snapFailed, line[len(departurePrefix[snapFailed]):])
	case strings.HasPrefix(line, departurePrefix[snapLeft]):
		return parseDeparture(snapLeft, line[len(departurePrefix[snapLeft]):])
	}
	for _, c := range []struct {
		prefix string
		kind   snapKind
	}{{"clock: ", snapClock}, {"event-clock: ", snapEventClock}, {"query-clock: ", snapQueryClock}} {
		if v, ok := strings.CutPrefix(line, c.prefix); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return snapRecord{}, fmt.Errorf("%s record: %w", strings.TrimSuffix(c.prefix, ": "), err)
			}
			return snapRecord{kind: c.kind, n: n}, nil
		}
	}
	return snapRecord{}, errors.New("unrecognized record")
}

// snapState is what a snapshot replay yields.
type snapState struct {
	alive                         map[string]string // name -> "ip:port"
	gone                          map[string]departure
	clock, eventClock, queryClock uint64
	left                          bool // a leave record was replayed
}

// departure is the last known address of a member that failed or left,
// and since when.
type departure struct {
	addr string
	at   int64 // Unix seconds
	left bool  // left gracefully; otherwise failed
}

// record is the failed or left record of the member name.
func (d departure) record(name string) snapRecord {
	kind := snapFailed
	if d.left {
		kind = snapLeft
	}
	return snapRecord{kind: kind, name: name, addr: d.addr, at: d.at}
}

// newSnapState is an empty state.
func newSnapState() snapState {
	return snapState{alive: make(map[string]string), gone: make(map[string]departure)}
}

// expire forgets the departures at or before cutoff (Unix seconds) and
// returns how many. A departure dated after now (the clock went back) is
// taken as now, so that it does not outlive the retention.
func (st *snapState) expire(cutoff, now int64) int {
	n := 0
	for name, d := range st.gone {
		switch {
		case d.at <= cutoff:
			delete(st.gone, name)
			n++
		case d.at > now:
			d.at = now
			st.gone[name] = d
		}
	}
	return n
}

// apply folds one record into the state.
func (st *snapState) apply(r snapRecord, rejoinAfterLeave bool) {
	switch r.kind {
	case snapAlive:
		st.alive[r.name] = r.addr
		delete(st.gone, r.name)
	case snapNotAlive:
		delete(st.alive, r.name)
	case snapFailed, snapLeft:
		delete(st.alive, r.name)
		st.gone[r.name] = departure{addr: r.addr, at: r.at, left: r.kind == snapLeft}
	case snapClock:
		st.clock = r.n
	case snapEventClock:
		st.eventClock = r.n
	case snapQueryClock:
		st.queryClock = r.n
	case snapLeave:
		st.left = true
		if !rejoinAfterLeave {
			clear(st.alive)
			clear(st.gone)
			st.clock = 0 // the event and query clocks stay: see the file comment
		}
	}
}

// replaySnapshot reads a snapshot. Bad lines are reported to warn (with
// their 1-based number) and skipped; only a read error is returned.
func replaySnapshot(r io.Reader, rejoinAfterLeave bool, warn func(lineNo int, err error)) (snapState, error) {
	st := newSnapState()
	br := bufio.NewReaderSize(r, 16<<10)
	for lineNo := 1; ; lineNo++ {
		line, tooLong, err := readSnapshotLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return st, err
		}
		switch {
		case tooLong:
			warn(lineNo, fmt.Errorf("line longer than %d bytes", snapshotMaxLine))
		case len(line) > 0 || err == nil:
			if rec, perr := parseSnapshotLine(line); perr != nil {
				warn(lineNo, perr)
			} else {
				st.apply(rec, rejoinAfterLeave)
			}
		}
		if err != nil { // io.EOF
			return st, nil
		}
	}
}

// readSnapshotLine returns the next line without its "\n" (or "\r\n"). A
// line over snapshotMaxLine is consumed and reported as tooLong. At the end
// of the input err is io.EOF, with the unterminated last line if any.
func readSnapshotLine(br *bufio.Reader) (line string, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, rerr := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > snapshotMaxLine+2 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(rerr, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			return "", true, rerr
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r")
		return s, false, rerr
	}
}
