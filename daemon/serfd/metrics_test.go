package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/serfd/serfd/internal/testutil"
)

// scrape is one read of a node's metrics: the text and its families.
type scrape struct {
	text     string
	families map[string]*dto.MetricFamily
}

// value is the sum of the samples of family name whose labels include
// every key=value of match (a histogram counts its observations); ok is
// false when no sample matches.
func (s scrape) value(name string, match ...string) (float64, bool) {
	f := s.families[name]
	if f == nil {
		return 0, false
	}
	var sum float64
	found := false
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(match); i += 2 {
			ok := false
			for _, l := range m.GetLabel() {
				if l.GetName() == match[i] && l.GetValue() == match[i+1] {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// get reads url through client and parses Prometheus' text format.
func getMetrics(client *http.Client, url string) (scrape, error) {
	resp, err := client.Get(url)
	if err != nil {
		return scrape{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return scrape{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return scrape{}, fmt.Errorf("parse metrics: %v\n%s", err, b)
	}
	return scrape{text: string(b), families: fams}, nil
}

// unixClient talks HTTP over the node's control socket.
func unixClient(socket string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}}}
}

// promtool finds Prometheus' promtool (Debian's prometheus package).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := osexec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	return p
}

// TestMetrics runs two real nodes and checks that every metric family
// serfd documents is served, on the control socket and on the TCP
// listener, passes `promtool check metrics`, and moves when what it counts
// happens: handler runs of each outcome, user events by allow-listed name,
// queries and their answers, control requests, members failing, gossip
// traffic, the snapshot.
func TestMetrics(t *testing.T) {
	tool := promtool(t)
	maddr := net.JoinHostPort("127.0.14.1", fmt.Sprint(testutil.FreePort(t, "127.0.14.1")))
	snap := filepath.Join(testutil.ShortTempDir(t, "snap-"), "snapshot")
	n1 := startNode(t, "m1", "127.0.14.1", fmt.Sprintf(`
snapshot_path = %q
metrics {
  address = %q
  event_names = ["memresponse"]
}
handler "slow" { timeout = "200ms" }
`, snap, maddr))
	n2 := startNode(t, "m2", "127.0.14.2", "")
	hdir := filepath.Join(n1.dir, "handlers.d")
	for name, body := range map[string]string{
		"bad":    "exit 3\n",
		"slow":   "[ \"$SERF_EVENT\" = user ] && exec sleep 60\nexit 0\n",
		"killer": "[ \"$SERF_EVENT\" = user ] && kill -9 $$\nexit 0\n",
		"answer": "[ \"$SERF_EVENT\" = query ] && echo yes\nexit 0\n",
	} {
		if err := os.WriteFile(filepath.Join(hdir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := unixClient(n1.socket)
	scrapeUntil := func(what string, cond func(s scrape) (bool, string)) scrape {
		t.Helper()
		var last scrape
		testutil.Poll(t, 30*time.Second, what, func() (bool, string) {
			s, err := getMetrics(sock, "http://serfd/v1/metrics")
			if err != nil {
				return false, err.Error()
			}
			last = s
			return cond(s)
		})
		return last
	}
	// atLeast checks family{labels} >= min in every given scrape.
	type want struct {
		name   string
		labels []string
		min    float64
	}
	check := func(s scrape, wants []want) (bool, string) {
		var missing []string
		for _, w := range wants {
			if v, ok := s.value(w.name, w.labels...); !ok || v < w.min {
				missing = append(missing, fmt.Sprintf("%s%v = %v (present %v); want >= %v", w.name, w.labels, v, ok, w.min))
			}
		}
		return len(missing) == 0, strings.Join(missing, "\n")
	}
	scrapeUntil("the new handlers to be active", func(s scrape) (bool, string) {
		return check(s, []want{{"serfd_handler_active", []string{"handler", "bad"}, 1},
			{"serfd_handler_active", []string{"handler", "answer"}, 1}, {"serfd_handler_active", []string{"handler", "killer"}, 1},
			{"serfd_handler_active", []string{"handler", "slow"}, 1}})
	})

	if _, errOut, code := n2.ctl(t, "join", n1.addr); code != 0 {
		t.Fatalf("join: exit %d: %s", code, errOut)
	}
	n1.waitStatus(t, 30*time.Second, "alive", "m2")
	for _, ev := range [][]string{{"memresponse", "x"}, {"other", "y"}} {
		if _, errOut, code := n1.ctl(t, append([]string{"event"}, ev...)...); code != 0 {
			t.Fatalf("event %v: exit %d: %s", ev, code, errOut)
		}
	}
	if _, errOut, code := n2.ctl(t, "event", "fromm2", "z"); code != 0 {
		t.Fatalf("event on m2: exit %d: %s", code, errOut)
	}
	if _, errOut, code := n2.ctl(t, "query", "-timeout", "3s", "q", "p"); code != 0 {
		t.Fatalf("query from m2: exit %d: %s", code, errOut)
	}
	// m2 answers with nothing (its only handler writes nothing to stdout),
	// so this query runs to its deadline.
	if _, errOut, code := n1.ctl(t, "query", "-timeout", "1s", "q", "p"); code != 0 {
		t.Fatalf("query from m1: exit %d: %s", code, errOut)
	}
	// A forged packet: a user event message whose body is not msgpack.
	c, err := net.Dial("udp", n1.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte{8 /* memberlist user message */, 3 /* user event */, 0xc1}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	moved := []want{
		{"serfd_handler_runs_total", []string{"handler", "memresponse", "outcome", "ok"}, 1},
		{"serfd_handler_runs_total", []string{"handler", "bad", "outcome", "exit_nonzero"}, 1},
		{"serfd_handler_runs_total", []string{"handler", "slow", "outcome", "timeout"}, 1},
		{"serfd_handler_runs_total", []string{"handler", "killer", "outcome", "killed"}, 1},
		{"serfd_handler_run_duration_seconds", []string{"handler", "bad"}, 1},
		{"serfd_user_events_delivered_total", []string{"event", "memresponse"}, 1},
		{"serfd_user_events_delivered_total", []string{"event", "_other"}, 2},
		{"serfd_user_events_total", []string{"result", "sent"}, 2},
		{"serfd_user_events_total", []string{"result", "received"}, 1},
		{"serfd_user_events_total", []string{"result", "relayed"}, 1},
		{"serfd_queries_total", []string{"result", "sent"}, 1},
		{"serfd_queries_total", []string{"result", "received"}, 1},
		{"serfd_query_answers_received_total", []string{"type", "ack"}, 2},
		{"serfd_query_answers_received_total", []string{"type", "response"}, 1},
		{"serfd_query_responses_sent_total", []string{"result", "sent"}, 2},
		{"serfd_queries_timed_out_total", nil, 1},
		{"serfd_control_requests_total", []string{"path", "/v1/event", "code", "200"}, 2},
		{"serfd_control_requests_total", []string{"path", "/v1/metrics", "code", "200"}, 1},
		{"serfd_members", []string{"status", "alive"}, 2},
		{"serfd_member_events_total", []string{"type", "member-join"}, 2},
		{"serfd_gossip_malformed_messages_total", nil, 1},
		{"serfd_gossip_sent_bytes_total", []string{"transport", "udp"}, 1},
		{"serfd_gossip_received_bytes_total", []string{"transport", "udp"}, 1},
		{"serfd_gossip_streams_total", nil, 1},
		{"serfd_gossip_state_messages_total", []string{"type", "alive"}, 1},
		{"serfd_gossip_probe_duration_seconds", nil, 1},
		{"serfd_gossip_round_duration_seconds", nil, 1},
		{"serfd_gossip_push_pull_duration_seconds", nil, 1},
		{"serfd_gossip_push_pull_received_bytes", nil, 0}, // measured when encrypted only
		{"serfd_gossip_push_pull_sent_bytes", nil, 1},
		{"serfd_gossip_nodes", []string{"state", "alive"}, 1},
		{"serfd_snapshot_writes_total", []string{"kind", "flush"}, 1},
		{"serfd_snapshot_write_seconds_total", nil, 0},
		{"serfd_lamport_time", []string{"clock", "event"}, 3},
		{"go_goroutines", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
	}
	scrapeUntil("every metric to move", func(s scrape) (bool, string) { return check(s, moved) })

	// kill -9 m2: m1 counts it failed; back within a minute, a flap.
	if err := n2.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	scrapeUntil("m2 failed", func(s scrape) (bool, string) {
		return check(s, []want{{"serfd_members", []string{"status", "failed"}, 1},
			{"serfd_member_events_total", []string{"type", "member-failed"}, 1},
			{"serfd_gossip_degraded_total", nil, 1}})
	})
	<-n2.proc.Exited()
	n2.launch(t)
	if _, errOut, code := n2.ctl(t, "join", n1.addr); code != 0 {
		t.Fatalf("join again: exit %d: %s", code, errOut)
	}
	last := scrapeUntil("m2 back, a flap", func(s scrape) (bool, string) {
		return check(s, []want{{"serfd_members", []string{"status", "alive"}, 2}, {"serfd_member_flaps_total", nil, 1}})
	})

	for _, f := range metricsFamilies {
		if last.families[f] == nil {
			t.Errorf("metric family %s missing", f)
		}
	}
	cmd := osexec.Command(tool, "check", "metrics")
	cmd.Stdin = strings.NewReader(last.text)
	if out, errOut, code := testutil.Run(t, cmd); code != 0 || out != "" || errOut != "" {
		t.Errorf("promtool check metrics: exit %d\n%s%s", code, out, errOut)
	}

	// The TCP listener serves the same registry at /metrics and only that.
	tcp := &http.Client{Timeout: 10 * time.Second}
	s, err := getMetrics(tcp, "http://"+maddr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range metricsFamilies {
		if s.families[f] == nil {
			t.Errorf("metric family %s missing on the TCP listener", f)
		}
	}
	resp, err := tcp.Get("http://" + maddr + "/v1/members")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/members on the metrics listener = %s; want 404", resp.Status)
	}
}

// metricsFamilies are the families serfd documents (README "Metrics");
// each must be present in a scrape.
var metricsFamilies = []string{
	"serfd_build_info", "serfd_members", "serfd_member_flaps_total", "serfd_member_events_total", "serfd_health_score",
	"serfd_user_events_total", "serfd_user_events_delivered_total", "serfd_queries_total", "serfd_events_dropped_total",
	"serfd_query_answers_received_total", "serfd_queries_timed_out_total", "serfd_query_responses_sent_total",
	"serfd_gossip_queue_messages", "serfd_lamport_time", "serfd_gossip_malformed_messages_total",
	"serfd_coordinate_resets_total", "serfd_snapshot_writes_total", "serfd_snapshot_write_seconds_total",
	"serfd_snapshot_dropped_records_total", "serfd_rpc_stream_events_lost_total",
	"serfd_handler_runs_total", "serfd_handler_run_duration_seconds", "serfd_handler_workers", "serfd_handler_workers_busy",
	"serfd_handler_queue_runs", "serfd_handler_queue_limit", "serfd_handler_spooled_runs", "serfd_handler_active",
	"serfd_handler_queued_runs", "serfd_handler_repeats_total", "serfd_control_requests_total",
	"serfd_gossip_sent_bytes_total", "serfd_gossip_received_bytes_total", "serfd_gossip_streams_total",
	"serfd_gossip_state_messages_total", "serfd_gossip_degraded_total", "serfd_gossip_probe_duration_seconds",
	"serfd_gossip_round_duration_seconds", "serfd_gossip_push_pull_duration_seconds", "serfd_gossip_push_pull_received_bytes",
	"serfd_gossip_push_pull_sent_bytes", "serfd_gossip_membership_queue_messages", "serfd_gossip_nodes",
	"go_goroutines", "process_resident_memory_bytes", "process_start_time_seconds",
}

// TestDashboardAndRules checks contrib/grafana's dashboard for the fields
// Grafana needs, that every PromQL expression of the dashboard and of the
// alert rules parses (promtool) and names only metrics serfd serves
// (metricsFamilies, which TestMetrics checks against a real scrape).
func TestDashboardAndRules(t *testing.T) {
	tool := promtool(t)
	b, err := os.ReadFile("../../contrib/grafana/serfd-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID           string `json:"uid"`
		Title         string `json:"title"`
		SchemaVersion int    `json:"schemaVersion"`
		Panels        []struct {
			ID      int             `json:"id"`
			Type    string          `json:"type"`
			Title   string          `json:"title"`
			GridPos map[string]int  `json:"gridPos"`
			DS      json.RawMessage `json:"datasource"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion < 30 || len(dash.Panels) == 0 {
		t.Errorf("dashboard uid %q title %q schemaVersion %d panels %d; want all set", dash.UID, dash.Title, dash.SchemaVersion, len(dash.Panels))
	}
	var exprs []string
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if p.ID == 0 || ids[p.ID] || p.Type == "" || p.Title == "" || p.GridPos["w"] == 0 || p.GridPos["h"] == 0 || len(p.DS) == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %+v lacks a unique id, type, title, gridPos, datasource or targets", p)
		}
		ids[p.ID] = true
		for _, tg := range p.Targets {
			if tg.RefID == "" || tg.Expr == "" {
				t.Errorf("panel %q: target %+v lacks refId or expr", p.Title, tg)
			}
			// Grafana's $__rate_interval is not PromQL.
			exprs = append(exprs, strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m"))
		}
	}
	rules, err := os.ReadFile("../../contrib/prometheus/serfd.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(rules), "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(line), "expr: "); ok {
			exprs = append(exprs, e)
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("found %d expressions; the dashboard and rules hold more", len(exprs))
	}
	served := map[string]bool{"up": true}
	for _, f := range metricsFamilies {
		served[f] = true
	}
	name := regexp.MustCompile(`\b(serfd_[a-z_]+|process_[a-z_]+|go_[a-z_]+|up)\b`)
	var rec strings.Builder
	rec.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		for _, n := range name.FindAllString(e, -1) {
			base := n
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suf); ok && served[b] {
					base = b
				}
			}
			if !served[base] {
				t.Errorf("expression %q names %s, which serfd does not serve", e, n)
			}
		}
		fmt.Fprintf(&rec, "      - record: serfd:check_%d\n        expr: %q\n", i, e)
	}
	path := filepath.Join(t.TempDir(), "exprs.yml")
	if err := os.WriteFile(path, []byte(rec.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := testutil.Run(t, osexec.Command(tool, "check", "rules", path)); code != 0 {
		t.Errorf("promtool check rules on the expressions: exit %d\n%s%s", code, out, errOut)
	}
}
