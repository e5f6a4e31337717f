package exec

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// outcomes collects what Options.OnRun is told. Safe for concurrent use.
type outcomes struct {
	mu  sync.Mutex
	got []RunOutcome
}

func (o *outcomes) add(r RunOutcome) {
	o.mu.Lock()
	o.got = append(o.got, r)
	o.mu.Unlock()
}

// of returns the outcomes told of handler's runs.
func (o *outcomes) of(handler string) []RunOutcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []RunOutcome
	for _, r := range o.got {
		if r.Handler == handler {
			out = append(out, r)
		}
	}
	return out
}

// OnRun is told how each run ended: exit 0, another status, its deadline,
// a signal, a script that cannot start.
func TestOnRunTellsOutcome(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeScript(t, dir, "ok", "exit 0\n")
	writeScript(t, dir, "bad", "exit 3\n")
	writeScript(t, dir, "slow", "exec sleep 60\n")
	writeScript(t, dir, "killer", "kill -9 $$\n")
	if err := os.WriteFile(filepath.Join(dir, "nostart"), []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := &outcomes{}
	p, _ := startPool(t, Options{Dir: dir, Workers: 5, OnRun: o.add,
		Handlers: map[string]HandlerConfig{"slow": {Timeout: 100 * time.Millisecond}}})
	p.Submit(userEvent("e", "", 1))
	want := map[string]Outcome{"ok": OutcomeOK, "bad": OutcomeExitNonZero, "slow": OutcomeTimeout,
		"killer": OutcomeKilled, "nostart": OutcomeStartFailed}
	for h, w := range want {
		testutil.Poll(t, 30*time.Second, "the outcome of "+h, func() (bool, string) {
			got := o.of(h)
			if len(got) != 1 {
				return false, fmt.Sprintf("%d outcomes", len(got))
			}
			r := got[0]
			return r.Outcome == w && r.Event == "user", fmt.Sprintf("%+v; want outcome %s", r, w)
		})
	}
	if d := o.of("slow")[0].Duration; d < 100*time.Millisecond {
		t.Errorf("slow's duration = %v; want at least its 100ms deadline", d)
	}
}

// OnRun is told of a run dropped because the queue was full.
func TestOnRunTellsDropped(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	release := filepath.Join(out, "release")
	writeScript(t, dir, "block", fmt.Sprintf(`
echo "$SERF_USER_LTIME" >> '%[1]s/started'
while [ ! -e '%[2]s' ]; do sleep 0.02; done
`, out, release))
	o := &outcomes{}
	p, _ := startPool(t, Options{Dir: dir, Workers: 1, Queue: 1, OnRun: o.add})
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })
	p.Submit(userEvent("e", "", 1))
	testutil.WaitFor(t, 10*time.Second, "the first run to start", func() bool { return fileHas(filepath.Join(out, "started"), "1\n") })
	p.Submit(userEvent("e", "", 2)) // queued
	p.Submit(userEvent("e", "", 3)) // dropped: the queue holds one
	if got := o.of("block"); len(got) != 1 || got[0].Outcome != OutcomeDropped || got[0].Duration != 0 {
		t.Fatalf("outcomes = %+v; want one dropped run", got)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p.Close()
	got := o.of("block")
	n := map[Outcome]int{}
	for _, r := range got {
		n[r.Outcome]++
	}
	if n[OutcomeOK] != 2 || n[OutcomeDropped] != 1 || len(got) != 3 {
		t.Errorf("outcomes after Close = %+v; want 2 ok and 1 dropped", got)
	}
}
