package gossip

import (
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/serfd/serfd/internal/testutil"
)

func TestSetTagsSeenByPeers(t *testing.T) {
	a := startNode(t, Config{NodeName: "a", Tags: map[string]string{"role": "old"}}, 156, testTiming())
	b := startNode(t, Config{NodeName: "b"}, 157, testTiming())
	if n, err := b.Join(t.Context(), []string{a.addr}, true); n != 1 || err != nil {
		t.Fatalf("b.Join(%s) = %d, %v; want 1, nil", a.addr, n, err)
	}
	testutil.WaitFor(t, settle, "b to see a", func() bool { return memberStatus(b.Cluster, "a") == StatusAlive })

	tags := map[string]string{"role": "new", "dc": "x"}
	if err := a.SetTags(tags); err != nil {
		t.Fatalf("a.SetTags(%v) = %v; want nil", tags, err)
	}
	tags["role"] = "mutated by the caller" // SetTags keeps no reference
	want := map[string]string{"role": "new", "dc": "x"}
	hasUpdate := func(n *node) bool {
		for _, ev := range n.rec.all() {
			if ev.Type == EventMemberUpdate && len(ev.Members) == 1 && ev.Members[0].Name == "a" &&
				maps.Equal(ev.Members[0].Tags, want) {
				return true
			}
		}
		return false
	}
	testutil.WaitFor(t, settle, "b to deliver member-update for a with the new tags", func() bool { return hasUpdate(b) })
	testutil.WaitFor(t, settle, "a to deliver its own member-update", func() bool { return hasUpdate(a) })
	for _, m := range b.Members() {
		if m.Name == "a" && !maps.Equal(m.Tags, want) {
			t.Errorf("b.Members() a's tags = %v; want %v", m.Tags, want)
		}
	}
	if got := a.LocalMember().Tags; !maps.Equal(got, want) {
		t.Errorf("a.LocalMember().Tags = %v; want %v", got, want)
	}
}

func TestSetTagsMetaLimit(t *testing.T) {
	a := startNode(t, Config{NodeName: "a", Tags: map[string]string{"role": "web"}}, 158, testTiming())
	big := map[string]string{"blob": strings.Repeat("x", 600)}
	err := a.SetTags(big)
	if err == nil {
		t.Fatalf("SetTags(600-byte tag) = nil; want an error")
	}
	meta, _ := a.wire.encodeTags(big)
	for _, want := range []string{strconv.Itoa(len(meta)), "512"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("SetTags(600-byte tag) = %q; want it to name %s", err, want)
		}
	}
	if got := a.LocalMember().Tags; !maps.Equal(got, map[string]string{"role": "web"}) {
		t.Errorf("LocalMember().Tags after a rejected SetTags = %v; want the old tags", got)
	}
	// Exactly at the limit is fine: 0xFF + fixmap(1) + "k" (2) + str16 header (3) + value.
	fit := map[string]string{"k": strings.Repeat("y", 512-1-1-2-3)}
	if err := a.SetTags(fit); err != nil {
		t.Errorf("SetTags(tags encoding to 512 bytes) = %v; want nil", err)
	}
}
