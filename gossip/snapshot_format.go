package gossip

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
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
)

// snapRecord is one line of the snapshot file.
type snapRecord struct {
	kind snapKind
	name string
	addr string // "ip:port", normalized
	n    uint64
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
	}
	return ""
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
	clock, eventClock, queryClock uint64
	left                          bool // a leave record was replayed
}

// apply folds one record into the state.
func (st *snapState) apply(r snapRecord, rejoinAfterLeave bool) {
	switch r.kind {
	case snapAlive:
		st.alive[r.name] = r.addr
	case snapNotAlive:
		delete(st.alive, r.name)
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
			st.clock = 0 // the event and query clocks stay: see the file comment
		}
	}
}

// replaySnapshot reads a snapshot. Bad lines are reported to warn (with
// their 1-based number) and skipped; only a read error is returned.
func replaySnapshot(r io.Reader, rejoinAfterLeave bool, warn func(lineNo int, err error)) (snapState, error) {
	st := snapState{alive: make(map[string]string)}
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
