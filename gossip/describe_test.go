package gossip

import (
	"net"
	"testing"
)

func TestEventTypeDescribe(t *testing.T) {
	m := func(name, ip string) Member { return Member{Name: name, Addr: net.ParseIP(ip), Port: 7946} }
	for _, tc := range []struct {
		t       EventType
		members []Member
		want    string
	}{
		{EventMemberFailed, []Member{m("web-2", "10.0.0.2")}, "member web-2 failed (10.0.0.2:7946)"},
		{EventMemberJoin, []Member{m("v6", "fd00::1")}, "member v6 joined ([fd00::1]:7946)"},
		{EventMemberLeave, []Member{m("a", "10.0.0.1"), m("b", "10.0.0.2")}, "2 members left: a (10.0.0.1:7946), b (10.0.0.2:7946)"},
		{EventMemberReap, []Member{m("a", "10.0.0.1"), m("b", "10.0.0.2"), m("c", "10.0.0.3"), m("d", "10.0.0.4"), m("e", "10.0.0.5")},
			"5 members reaped: a (10.0.0.1:7946), b (10.0.0.2:7946), c (10.0.0.3:7946) and 2 more"},
		{EventMemberUpdate, nil, "member-update"},
		{EventUser, nil, "user"},
	} {
		if got := tc.t.Describe(tc.members); got != tc.want {
			t.Errorf("%s.Describe(%v) = %q; want %q", tc.t, tc.members, got, tc.want)
		}
	}
}
