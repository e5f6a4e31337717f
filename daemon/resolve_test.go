package daemon

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/serfd/serfd/internal/testutil"
)

// resolveJoin turns IP addresses, DNS names (every A and AAAA address) and
// SRV names (every target, with the record's port) into ip:port addresses,
// each once, through the configured DNS server; an entry that does not
// resolve is named in the error and the others are still returned.
func TestResolveJoin(t *testing.T) {
	srv := testutil.ServeDNS(t, "127.0.0.1",
		"two.t.internal. 5 IN A 10.1.0.1",
		"two.t.internal. 5 IN A 10.1.0.2",
		"v6.t.internal. 5 IN AAAA fd00::7",
		"_serf._udp.t.internal. 5 IN SRV 0 0 7001 n1.t.internal.",
		"_serf._udp.t.internal. 5 IN SRV 0 0 7002 n2.t.internal.",
		"n1.t.internal. 5 IN A 10.2.0.1",
		"n2.t.internal. 5 IN A 10.2.0.2",
	)
	r := newResolver(resolverAddr(srv.Addr))
	got, err := resolveJoin(context.Background(), r, []string{
		"10.0.0.9", "[fd00::9]:7000", "two.t.internal:7100", "v6.t.internal", "_serf._udp.t.internal", "10.1.0.1:7100",
	})
	if err != nil {
		t.Fatalf("resolveJoin: %v", err)
	}
	want := []string{"10.0.0.9:7946", "[fd00::9]:7000", "10.1.0.1:7100", "10.1.0.2:7100", "[fd00::7]:7946",
		"10.2.0.1:7001", "10.2.0.2:7002"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("resolveJoin = %v; want %v", got, want)
	}

	got, err = resolveJoin(context.Background(), r, []string{"gone.t.internal", "two.t.internal"})
	if err == nil || !strings.Contains(err.Error(), `"gone.t.internal"`) {
		t.Errorf("resolveJoin with a name that does not exist: error %v; want it named", err)
	}
	if len(got) != 2 {
		t.Errorf("resolveJoin with one bad name = %v; want the two addresses of the other", got)
	}

	// Names are looked up at every call: a changed record is followed.
	srv.Set(t, "two.t.internal. 5 IN A 10.1.0.3")
	if got, err := resolveJoin(context.Background(), r, []string{"two.t.internal"}); err != nil || !slices.Equal(got, []string{"10.1.0.3:7946"}) {
		t.Errorf("resolveJoin after the record changed = %v, %v; want [10.1.0.3:7946]", got, err)
	}
}

func TestJoinEntrySyntax(t *testing.T) {
	for _, c := range []struct {
		entry   string
		problem string // "" = valid
	}{
		{"_serf._udp.t.internal", ""},
		{"_serf._udp.t.internal:7946", "an SRV name takes no port"},
		{"serf.internal:7946", ""},
	} {
		err := checkJoinAddr(c.entry)
		if (err == nil) != (c.problem == "") || err != nil && !strings.Contains(err.Error(), c.problem) {
			t.Errorf("checkJoinAddr(%q) = %v; want %q", c.entry, err, c.problem)
		}
	}
	for _, c := range []struct {
		addr, problem, full string
	}{
		{"127.0.0.1:8600", "", "127.0.0.1:8600"},
		{"10.0.0.2", "", "10.0.0.2:53"},
		{"fd00::53", "", "[fd00::53]:53"},
		{"[fd00::53]:5353", "", "[fd00::53]:5353"},
		{"dns.internal:53", "want the IP address of a DNS server", ""},
		{"127.0.0.1:0", "port", ""},
	} {
		err := checkResolverAddr(c.addr)
		if (err == nil) != (c.problem == "") || err != nil && !strings.Contains(err.Error(), c.problem) {
			t.Errorf("checkResolverAddr(%q) = %v; want %q", c.addr, err, c.problem)
		}
		if err == nil && resolverAddr(c.addr) != c.full {
			t.Errorf("resolverAddr(%q) = %q; want %q", c.addr, resolverAddr(c.addr), c.full)
		}
	}
}
