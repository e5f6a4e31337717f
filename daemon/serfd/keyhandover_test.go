package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfd/serfd/internal/testutil"
)

// handoverKeys are two keys of a rotation: the cluster starts on the
// first and moves to the second.
const (
	handoverOldKey = "FIYKOmAkoxpZK5ASyxB5n9aBmFsumFm7Bm018QE02SM="
	handoverNewKey = "UWM/t4xhZaf28U2+jV9L0aoLvW7uW2akFsf200R7qJw="
)

// handoverNodes starts a and b with keyring files holding the old key and
// a grace period of grace (extra configuration lines), c joining a, and
// waits until all three are alive on a.
func handoverNodes(t *testing.T, ips [3]string, grace string) (a, b, c *node, cRing string) {
	t.Helper()
	ring := func(n string) string {
		p := filepath.Join(testutil.ShortTempDir(t, "kr-"), n+".keyring")
		if err := os.WriteFile(p, []byte(`["`+handoverOldKey+`"]`), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := func(n string) string {
		return fmt.Sprintf("keyring_file = %q\nkey_handover_grace = %q\n", ring(n), grace)
	}
	a = startNodeWithSocket(t, "kh-a", ips[0], "", conf("a"))
	b = startNodeWithSocket(t, "kh-b", ips[1], "", conf("b"), fmt.Sprintf("join = [%q]", a.addr))
	cRing = ring("c")
	c = startNodeWithSocket(t, "kh-c", ips[2], "", fmt.Sprintf("keyring_file = %q", cRing), fmt.Sprintf("join = [%q]", a.addr))
	a.waitStatus(t, 30*time.Second, "alive", "kh-a", "kh-b", "kh-c")
	return a, b, c, cRing
}

// rotateWhileDown stops c, then, once a sees it left, installs the new key,
// makes it primary and removes the old one, through a.
func rotateWhileDown(t *testing.T, a, c *node) {
	t.Helper()
	c.stop(t)
	a.waitStatus(t, 30*time.Second, "left", c.name)
	for _, args := range [][]string{{"install", handoverNewKey}, {"use", handoverNewKey}, {"remove", handoverOldKey}} {
		if out, errOut, code := a.ctl(t, append([]string{"keys"}, args...)...); code != 0 {
			t.Fatalf("serfctl keys %v = %q %q exit %d", args, out, errOut, code)
		}
	}
}

// A node that was down while the cluster rotated its key comes back with
// only the removed key, asks the peers of its failed join for the keyring,
// takes it over from a peer that keeps the removed key as retired, writes
// its keyring file and gets back in.
func TestKeyRotationWhileDownRejoins(t *testing.T) {
	t.Parallel()
	a, b, c, cRing := handoverNodes(t, [3]string{"127.0.0.121", "127.0.0.122", "127.0.0.123"}, "1h")
	rotateWhileDown(t, a, c)

	c.launch(t)
	c.waitStatus(t, 60*time.Second, "alive", "kh-a", "kh-b", "kh-c")
	a.waitStatus(t, 30*time.Second, "alive", "kh-c")
	if got := readFile(cRing); !strings.Contains(got, handoverNewKey) || strings.Contains(got, handoverOldKey) {
		t.Errorf("kh-c's keyring file after the handover = %q; want only the new key", got)
	}
	if logs := c.proc.Out.String(); !strings.Contains(logs, "took over the cluster's keyring") {
		t.Errorf("kh-c's log does not say it took the keyring over:\n%s", logs)
	}
	if logs := a.proc.Out.String() + b.proc.Out.String(); !strings.Contains(logs, "handed the keyring over") {
		t.Errorf("neither peer's log says it handed the keyring over")
	}
}

// Once the grace period after a key's removal has passed, the key opens
// nothing: the node that holds only it stays out, asking in vain.
func TestKeyHandoverEndsWithGracePeriod(t *testing.T) {
	t.Parallel()
	a, b, c, cRing := handoverNodes(t, [3]string{"127.0.0.124", "127.0.0.125", "127.0.0.126"}, "1s")
	rotateWhileDown(t, a, c)
	removed := time.Now()
	// The grace period is a span of time: wait for the clock to pass it.
	testutil.Poll(t, 10*time.Second, "the 1s grace period to pass", func() (bool, string) {
		return time.Since(removed) > 2*time.Second, "not yet"
	})

	c.launch(t)
	testutil.Poll(t, 60*time.Second, "kh-c to ask for the keyring three times", func() (bool, string) {
		logs := c.proc.Out.String()
		return strings.Count(logs, "asking the peers for the current keyring") >= 3, logs
	})
	ms, state := c.members(t)
	if ms == nil || ms["kh-a"].Status == "alive" || ms["kh-b"].Status == "alive" {
		t.Errorf("kh-c got in with a key removed past the grace period: %s", state)
	}
	if got := readFile(cRing); !strings.Contains(got, handoverOldKey) || strings.Contains(got, handoverNewKey) {
		t.Errorf("kh-c's keyring file = %q; want the old key alone", got)
	}
	if logs := a.proc.Out.String() + b.proc.Out.String(); strings.Contains(logs, "handed the keyring over") {
		t.Errorf("a peer handed the keyring over after the grace period")
	}
}
