package exec

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// The messages of the pool's records read on their own, as `journalctl -u
// serfd` shows them (MESSAGE only): each names the handler, says what
// happened with its key figures, and ends with the event it concerns in
// parentheses, as in
//
//	handler memresponse exited 3 after 12 ms (user event memresponse)
//
// The fields (HANDLER, EXIT_STATUS, DURATION_MS, ...) carry the same facts
// for queries by field.

// membersNamed is how many members a member event's description names
// before it counts the rest.
const membersNamed = 3

// describeEvent names an event in the messages of its runs: "user event
// NAME", "query NAME", or a member event's type and the members it is
// about ("member-join web-2", "member-failed a, b, c and 4 more").
func describeEvent(typ, userEvent, queryName string, members []Member) string {
	switch typ {
	case "user":
		return "user event " + userEvent
	case "query":
		return "query " + queryName
	}
	if len(members) == 0 {
		return typ
	}
	names := make([]string, 0, membersNamed)
	for _, m := range members[:min(len(members), membersNamed)] {
		names = append(names, m.Name)
	}
	s := typ + " " + strings.Join(names, ", ")
	if more := len(members) - len(names); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// humanDuration is d for a person: whole milliseconds below ten seconds
// ("12 ms"), seconds with one decimal from there ("61.5 s").
func humanDuration(d time.Duration) string {
	if d < 10*time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
}

// runEvent is the parenthesised end of a run's messages: the event, and
// which attempt this is when it is not the first.
func runEvent(j *job) string {
	if j.attempt > 1 {
		return fmt.Sprintf(" (%s, attempt %d)", j.ev.desc, j.attempt)
	}
	return " (" + j.ev.desc + ")"
}

// message is the MESSAGE of a run's record: which handler ran, how the run
// ended (worded after outcome) and for which event, e.g. "handler
// memresponse exited 3 after 12 ms (user event memresponse)" or "handler
// deploy timed out after 60.0 s; stopped by SIGTERM (user event deploy)".
func (r runResult) message(j *job) string {
	d := humanDuration(r.duration)
	var how string
	switch r.outcome() {
	case OutcomeStartFailed:
		how = "could not start: " + startProblem(r.err)
	case OutcomeTimeout:
		if r.interrupted {
			how = "stopped at shutdown after " + d + " by " + r.signal
			if j.seq != 0 {
				how += "; it runs again at the next start"
			}
		} else {
			how = "timed out after " + d + "; " + r.ending()
		}
	case OutcomeKilled:
		how = "killed by " + r.signal + " after " + d
		if r.signal == "" {
			how = "killed after " + d
		}
	case OutcomeExitNonZero:
		how = fmt.Sprintf("exited %d after %s", r.exitStatus, d)
		if r.err != nil {
			how = "failed after " + d + ": " + r.err.Error()
		}
	default:
		how = "exited 0 after " + d
	}
	return "handler " + j.h.name + " " + how + runEvent(j)
}

// ending says how a run stopped at its deadline ended: by the signal sent,
// or by exiting (a script that traps SIGTERM).
func (r runResult) ending() string {
	switch r.signal {
	case "":
		return fmt.Sprintf("exited %d", r.exitStatus)
	case "SIGKILL":
		return "killed by SIGKILL"
	}
	return "stopped by " + r.signal
}

// startProblem is why a script could not start, without the "start PATH:"
// that the ERROR field has before the system's words, which name the path
// already.
func startProblem(err error) string {
	if err == nil {
		return "unknown error"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Error()
	}
	return err.Error()
}
