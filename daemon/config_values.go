package daemon

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/serfd/serfd/exec"
	"github.com/serfd/serfd/gossip"
)

// decodeKey decodes a base64 encryption key of 16, 24 or 32 bytes.
func decodeKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("key is not valid base64: %v (make one with: serfctl keygen)", err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("key is %d bytes; want 16, 24 or 32 (make one with: serfctl keygen)", len(key))
}

// readKeyring reads a keyring file: a JSON array of base64 keys, primary first.
func readKeyring(path string) ([][]byte, error) {
	data, err := readTrustedConfig(path)
	if err != nil {
		return nil, err
	}
	var encoded []string
	if err := json.Unmarshal(data, &encoded); err != nil {
		return nil, fmt.Errorf("%s is not a JSON array of base64 keys: %v", path, err)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("%s holds no key", path)
	}
	keys := make([][]byte, 0, len(encoded))
	for i, e := range encoded {
		k, err := decodeKey(e)
		if err != nil {
			return nil, fmt.Errorf("%s: key %d: %v", path, i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// compileHandlerTags is the pool's exec.Options.CompileTags: a handler
// block's tags, each value a regular expression that must match the whole
// of the tag's value (gossip.CompileTagFilter, anchored), a missing tag
// matched as "". A tag name may not be empty. The config loader checks
// handler blocks with it too, so that what loads is what the pool takes.
func compileHandlerTags(filters map[string]string) (func(map[string]string) bool, error) {
	if _, ok := filters[""]; ok {
		return nil, errors.New("tags: a tag name is empty")
	}
	f, err := gossip.CompileTagFilter(filters, true) // "tag filter NAME=EXPR: why"
	if err != nil {
		return nil, err
	}
	return f.Matches, nil
}

// defaultSnapshotPath puts the snapshot in systemd's StateDirectory when
// serfd runs under it, and keeps none otherwise.
func defaultSnapshotPath() string { return defaultStateFile("snapshot") }

// defaultStateFile is name in systemd's StateDirectory when serfd runs
// under it, and "" (none) otherwise.
func defaultStateFile(name string) string {
	if dir := os.Getenv("STATE_DIRECTORY"); dir != "" {
		return filepath.Join(strings.SplitN(dir, ":", 2)[0], name)
	}
	return ""
}

// parseHostPort splits "ip", "ip:port" or "[v6]:port"; the host must be an IP literal.
func parseHostPort(s string, defPort int) (string, int, error) {
	host, portStr := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, portStr = h, p
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q is not an IP address", host)
	}
	port := defPort
	if portStr != "" {
		p, err := strconv.Atoi(portStr)
		if err != nil || p < 0 || p > 65535 {
			return "", 0, fmt.Errorf("port %q is out of range 0..65535", portStr)
		}
		port = p
	}
	return host, port, nil
}

// checkJoinAddr says what makes s unusable as a join address, without
// resolving it: it must be an IP address or a DNS name, with an optional
// port from 1 to 65535 ("10.0.0.1", "10.0.0.1:7946", "[fe80::1]:7946",
// "serf.internal", "serf.internal:7946"), or an SRV name without a port
// ("_serf._udp.example.internal": the records give the ports).
func checkJoinAddr(s string) error {
	if strings.HasPrefix(s, "[") != strings.Contains(s, "]") {
		return fmt.Errorf("join %q: unbalanced brackets", s)
	}
	host, port, err := net.SplitHostPort(withPort(s))
	if err != nil {
		return fmt.Errorf("join %q is not host or host:port: %v", s, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("join %q: port %q is not a number from 1 to 65535", s, port)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if !isDNSName(host) {
		return fmt.Errorf("join %q: %q is neither an IP address nor a DNS name", s, host)
	}
	if _, _, err := net.SplitHostPort(s); err == nil && isSRVName(host) {
		return fmt.Errorf("join %q: an SRV name takes no port (its records give them)", s)
	}
	return nil
}

// checkResolverAddr says what makes s unusable as join_resolver: an IP
// address with an optional port ("127.0.0.1:8600", "[fd00::53]:53",
// "10.0.0.2"); "" is the system's resolver. A name would need a resolver
// of its own.
func checkResolverAddr(s string) error {
	if s == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.Trim(s, "[]"), "53"
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("join_resolver %q: want the IP address of a DNS server, with an optional port", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("join_resolver %q: port %q is not a number from 1 to 65535", s, port)
	}
	return nil
}

// resolverAddr is s (valid for checkResolverAddr) with the DNS port if it
// has none.
func resolverAddr(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil || s == "" {
		return s
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), "53")
}

// isDNSName reports whether s is a syntactically valid DNS name: labels of
// 1 to 63 letters, digits, hyphens or underscores (SRV names) not starting
// or ending with a hyphen, 253 bytes at most, an optional final dot.
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// withPort adds the default gossip port to a join address that lacks one.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	if strings.Contains(addr, ":") && !strings.HasPrefix(addr, "[") {
		return net.JoinHostPort(addr, strconv.Itoa(defaultGossipPort))
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(defaultGossipPort))
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "err", "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
}

// readTrustedConfig reads a file serfd takes settings from: configuration,
// keyring, tags, token (exec.ReadTrusted's rules, at most maxConfigFile).
func readTrustedConfig(path string) ([]byte, error) {
	return exec.ReadTrusted(path, os.Geteuid(), maxConfigFile)
}

// defaultRPCAddr is where an rpc block without an address serves Serf's
// RPC: loopback, Serf's port.
const defaultRPCAddr = "127.0.0.1:7373"

// checkRPCAddr says what makes s unusable as the RPC listen address: it
// must be IP:port with a port from 1 to 65535.
func checkRPCAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not IP:port: %v", s, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("%q: %q is not an IP address", s, host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	return nil
}

// defaultMetricsAddr is where a metrics block without an address serves
// Prometheus metrics: loopback, port 7374, beside Serf's RPC port (7373).
// Prometheus' list of exporter ports (9100-9999) is full, so any port
// there is some other exporter's.
const defaultMetricsAddr = "127.0.0.1:7374"

// maxMetricsEventNames bounds metrics { event_names }: each name is a
// series of serfd_user_events_delivered_total.
const maxMetricsEventNames = 100

// applyMetrics applies the metrics block: a block turns the TCP listener
// on (at defaultMetricsAddr unless address says where; address = "" turns
// it off again).
func (l *loader) applyMetrics(m *metricsBlock) {
	if m == nil {
		return
	}
	c := l.cfg
	c.MetricsAddr = defaultMetricsAddr
	if m.Address != nil {
		if *m.Address != "" {
			if err := checkRPCAddr(*m.Address); err != nil {
				l.at(m.Body, "address", "metrics address: %v", err)
			}
		}
		c.MetricsAddr = *m.Address
	}
	if m.EventNames != nil {
		if len(m.EventNames) > maxMetricsEventNames {
			l.at(m.Body, "event_names", "metrics event_names has %d names; at most %d may be counted by name", len(m.EventNames), maxMetricsEventNames)
		}
		for _, n := range m.EventNames {
			if n == "" || n == otherEvent {
				l.at(m.Body, "event_names", "metrics event_names: %q cannot be an event name here", n)
			}
		}
		c.MetricsEventNames = m.EventNames
	}
}

// readSecret reads a token file: trusted as a configuration file is, and
// readable by its owner only (mode 0600 or 0400), since it is a secret.
func readSecret(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s: refused: readable by group or others (mode %04o) (fix: chmod 0600 %s)", path, perm, path)
	}
	b, err := readTrustedConfig(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s holds no token", path)
	}
	return tok, nil
}

// applyInterface binds to the address of a network interface, as Serf's
// interface setting does: with bind at 0.0.0.0 (or ::) the interface's
// first address that is not link-local is taken; with another bind address
// the interface must have it.
func (l *loader) applyInterface(fc *fileConfig) {
	c, name := l.cfg, *fc.Interface
	if name == "" {
		return
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		l.at(fc.Body, "interface", "interface %q: %v", name, err)
		return
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		l.at(fc.Body, "interface", "interface %q: %v", name, err)
		return
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	if bind := net.ParseIP(c.BindAddr); bind == nil || bind.IsUnspecified() {
		if len(ips) == 0 {
			l.at(fc.Body, "interface", "interface %q has no address that is not link-local", name)
			return
		}
		c.BindAddr = ips[0].String()
		return
	}
	for _, ip := range ips {
		if ip.Equal(net.ParseIP(c.BindAddr)) {
			return
		}
	}
	l.at(fc.Body, "interface", "interface %q does not have the bind address %s (its addresses: %v)", name, c.BindAddr, ips)
}

// applyDiscovery applies mDNS discovery: discover and the mdns block.
func (l *loader) applyDiscovery(fc *fileConfig) {
	c := l.cfg
	if fc.Discover != nil {
		if *fc.Discover != "" {
			if err := gossip.CheckMDNSCluster(*fc.Discover); err != nil {
				l.at(fc.Body, "discover", "discover: %v", err)
			}
		}
		c.Discover = *fc.Discover
	}
	m := fc.MDNS
	if m == nil {
		return
	}
	if m.Interface != nil {
		if *m.Interface != "" {
			if _, err := net.InterfaceByName(*m.Interface); err != nil {
				l.at(m.Body, "interface", "mdns interface %q: %v", *m.Interface, err)
			}
		}
		c.MDNSInterface = *m.Interface
	}
	if m.DisableIPv4 != nil {
		c.MDNSDisableIPv4 = *m.DisableIPv4
	}
	if m.DisableIPv6 != nil {
		c.MDNSDisableIPv6 = *m.DisableIPv6
	}
	if c.MDNSDisableIPv4 && c.MDNSDisableIPv6 {
		l.at(m.Body, "disable_ipv6", "mdns: disable_ipv4 and disable_ipv6 are both true; mDNS needs one of them")
	}
}
