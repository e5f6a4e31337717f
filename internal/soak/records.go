package soak

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Outcomes of one API call made by the generator.
const (
	Accepted = "accepted" // 2xx: the contract applies
	Refused  = "refused"  // an error answer, or no connection (node down)
	Unknown  = "unknown"  // no answer before the client's deadline
)

// EventName and QueryName are what the generator sends; the suite's
// handlers log only these.
const (
	EventName = "soak"
	QueryName = "soakq"
)

// EventRecord is one line of the generator's event log: one
// `POST /v1/event` of a unique id to one node.
type EventRecord struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	Sent    time.Time `json:"sent"`
	Done    time.Time `json:"done"`
	Outcome string    `json:"outcome"`
	Status  int       `json:"status,omitempty"` // HTTP status of an error answer
	Error   string    `json:"error,omitempty"`
}

// QueryRecord is one line of the generator's query log.
type QueryRecord struct {
	ID        string    `json:"id"`
	Host      string    `json:"host"`
	Sent      time.Time `json:"sent"`
	Done      time.Time `json:"done"`
	Outcome   string    `json:"outcome"`
	Error     string    `json:"error,omitempty"`
	Expected  int       `json:"expected"` // alive members matching, per the "started" record
	Acks      int       `json:"acks"`
	Responses int       `json:"responses"`
}

// MembersRound is one line of the watcher's log: every node asked for its
// member list at about the same time.
type MembersRound struct {
	T time.Time `json:"t"`
	// Views maps an observer to its view (member name -> status); an
	// observer that did not answer is absent and named in Errors.
	Views  map[string]map[string]string `json:"views"`
	Errors map[string]string            `json:"errors,omitempty"`
}

// Fault is one injected fault, as the suite logs it: a tab-separated line
// "KIND HOST PEER PARAM INJECT HEAL NOTE", times in Unix seconds with a
// fraction (bash's $EPOCHREALTIME), "-" for an empty field. INJECT is when
// the injection began, HEAL when the healing command returned (for a fault
// with nothing to heal, such as kill -9, when the injecting one returned).
// The line of kind FinalHeal marks the end of the run's faults: everything
// healed and started again.
type Fault struct {
	Kind   string
	Host   string
	Peer   string // the other host of a one-way block
	Param  string // hold seconds, the package version, the tag value, or for kill9 the seconds until serfd ran again
	Inject time.Time
	Heal   time.Time
	Note   string
}

// FinalHeal is the kind of the fault log's last line.
const FinalHeal = "final-heal"

// Run is one run of a handler, as the suite's handler logs it: a line
// "NODE ID LTIME UNIXTIME ATTEMPT [skipped]" (the hanging handler's log
// has "NODE ID UNIXTIME" only). ATTEMPT is SERF_RUN_ATTEMPT: above 1 for a
// run serfd started again after a crash cut it short; "skipped" marks such
// a run that found its id already in the log and did nothing, as a handler
// that must act once does. A log line without ATTEMPT is attempt 1.
type Run struct {
	Node    string
	ID      string
	LTime   uint64
	T       time.Time
	Attempt int
	Skipped bool
}

// skippedMark is the last field of a skipped repeat's line.
const skippedMark = "skipped"

// JournalEntry is one entry of `journalctl -o json`: field name -> value.
// Fields journald exports as byte arrays (non-UTF-8 values) are dropped.
type JournalEntry map[string]string

// ReadJSONLines decodes one JSON value per line of r into a slice. A last
// line cut short (the writer was killed mid-line) is ignored; any other bad
// line is an error naming its number.
func ReadJSONLines[T any](r io.Reader, name string) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	var pending error
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if pending != nil {
			return nil, pending
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			pending = fmt.Errorf("%s:%d: %w", name, n, err)
			continue
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// ReadJournal decodes `journalctl -o json` output, keeping string fields.
func ReadJournal(r io.Reader, name string) ([]JournalEntry, error) {
	raw, err := ReadJSONLines[map[string]json.RawMessage](r, name)
	if err != nil {
		return nil, err
	}
	out := make([]JournalEntry, 0, len(raw))
	for _, m := range raw {
		e := make(JournalEntry, len(m))
		for k, v := range m {
			var s string
			if json.Unmarshal(v, &s) == nil {
				e[k] = s
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// ReadFaults parses the suite's fault log (see Fault).
func ReadFaults(r io.Reader, name string) ([]Fault, error) {
	var out []Fault
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			return nil, fmt.Errorf("%s:%d: %d fields; want 7 (kind host peer param inject heal note)", name, n, len(f))
		}
		for i := range f {
			if f[i] == "-" {
				f[i] = ""
			}
		}
		inject, err := parseUnix(f[4])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: inject time: %w", name, n, err)
		}
		heal, err := parseUnix(f[5])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: heal time: %w", name, n, err)
		}
		out = append(out, Fault{Kind: f[0], Host: f[1], Peer: f[2], Param: f[3], Inject: inject, Heal: heal, Note: f[6]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// ReadRuns parses a handler log (see Run). withLTime says whether lines
// carry the LTIME field. A line that does not parse is an error: the
// handlers append each line with one write, so a torn line is a finding.
func ReadRuns(r io.Reader, name string, withLTime bool) ([]Run, error) {
	var out []Run
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		run := Run{Node: f[0], ID: f[1], Attempt: 1}
		tField := 2
		if withLTime {
			tField = 3
			if len(f) == 6 && f[5] == skippedMark {
				run.Skipped = true
				f = f[:5]
			}
		}
		if want := "3"; !withLTime && len(f) != 3 || withLTime && len(f) != 4 && len(f) != 5 {
			if withLTime {
				want = "4 or 5, or 6 ending in " + skippedMark
			}
			return nil, fmt.Errorf("%s:%d: %q has %d fields; want %s", name, n, sc.Text(), len(f), want)
		}
		var err error
		if withLTime {
			if run.LTime, err = strconv.ParseUint(f[2], 10, 64); err != nil {
				return nil, fmt.Errorf("%s:%d: ltime: %w", name, n, err)
			}
		}
		if run.T, err = parseUnix(f[tField]); err != nil {
			return nil, fmt.Errorf("%s:%d: time: %w", name, n, err)
		}
		if len(f) == 5 {
			if run.Attempt, err = strconv.Atoi(f[4]); err != nil || run.Attempt < 1 {
				return nil, fmt.Errorf("%s:%d: attempt %q is not a number from 1 up", name, n, f[4])
			}
		}
		if run.Skipped && run.Attempt < 2 {
			return nil, fmt.Errorf("%s:%d: a first attempt marked %s", name, n, skippedMark)
		}
		out = append(out, run)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// parseUnix parses Unix seconds with an optional fraction ("1700000000.123456").
func parseUnix(s string) (time.Time, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return time.Time{}, fmt.Errorf("bad Unix time %q", s)
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3), nil
}

// readFile opens path and applies read to it.
func readFile[T any](path string, read func(io.Reader, string) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	return read(f, path)
}
