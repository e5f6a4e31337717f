package daemon

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// memberlist's "no private IP address found" becomes a configuration
// error naming advertise and the host's addresses; other errors pass.
func TestAdvertiseProblem(t *testing.T) {
	addrs := []net.Addr{
		&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
		&net.IPNet{IP: net.ParseIP("203.0.113.7"), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.ParseIP("2001:db8::7"), Mask: net.CIDRMask(64, 128)},
	}
	err := advertiseProblem(errors.New("Failed to get final advertise address: No private IP address found, and explicit IP not provided"), addrs)
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `set advertise = "IP"`) ||
		!strings.Contains(err.Error(), "addresses on this host: 203.0.113.7, 2001:db8::7") {
		t.Errorf("advertiseProblem = %v; want a ConfigError naming advertise and the public addresses", err)
	}
	other := errors.New("bind: address already in use")
	if got := advertiseProblem(other, addrs); got != other {
		t.Errorf("advertiseProblem(other) = %v; want it unchanged", got)
	}
}
