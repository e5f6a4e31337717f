package testutil

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer is an authoritative DNS server on a loopback UDP port that
// answers from records in zone-file syntax, which Set may replace while it
// runs. It answers every name it has no record of with NXDOMAIN, and is
// shut down at cleanup.
type DNSServer struct {
	Addr string // ip:port

	mu      sync.Mutex
	records []dns.RR
}

// ServeDNS starts a DNSServer on ip (a free port) with records, each one
// line of a zone file with its name fully qualified
// ("a.test.internal. 5 IN A 127.0.0.1").
func ServeDNS(tb testing.TB, ip string, records ...string) *DNSServer {
	tb.Helper()
	s := &DNSServer{}
	s.Set(tb, records...)
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		tb.Fatalf("DNS server: listen on %s: %v", ip, err)
	}
	s.Addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.answer)}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		tb.Fatalf("DNS server on %s: %v", s.Addr, err)
	}
	tb.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return s
}

// Set replaces the records.
func (s *DNSServer) Set(tb testing.TB, records ...string) {
	tb.Helper()
	var rrs []dns.RR
	for _, line := range records {
		rr, err := dns.NewRR(line)
		if err != nil || rr == nil {
			tb.Fatalf("DNS record %q: %v", line, err)
		}
		rrs = append(rrs, rr)
	}
	s.mu.Lock()
	s.records = rrs
	s.mu.Unlock()
}

func (s *DNSServer) answer(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	s.mu.Lock()
	known := false
	for _, q := range req.Question {
		for _, rr := range s.records {
			h := rr.Header()
			if !strings.EqualFold(h.Name, q.Name) {
				continue
			}
			known = true
			if h.Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
	}
	s.mu.Unlock()
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}
