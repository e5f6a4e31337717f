package daemon

import (
	"strings"
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// memberlist measures its gossip (bytes, probes, push/pulls, state
// messages) through go-metrics' process-wide sink. bridgeSink is that sink:
// it hands each measurement to a Prometheus metric of serfd's own name,
// unit and type. go-metrics' own Prometheus sink is not used: it names
// counters without _total, keeps timings in milliseconds under camelCase
// names (memberlist_probeNode), and drops series not updated for a minute,
// all of which `promtool check metrics` or an alert on a quiet node trips
// over. Measurements memberlist adds later and this table does not name
// are ignored.
type bridgeSink struct {
	counters   map[string]prometheus.Counter
	gauges     map[string]prometheus.Gauge
	histograms map[string]prometheus.Observer
	nodes      *prometheus.GaugeVec // memberlist.node.instances, by its node_state label
	all        []prometheus.Collector
}

var (
	bridgeOnce sync.Once
	bridge     *bridgeSink
)

// gossipBridge installs the bridge as go-metrics' global sink, once per
// process, and returns it as a Collector. Every daemon of a process (there
// is one, but for tests) registers the same collector: memberlist's
// measurements are process-wide.
func gossipBridge() prometheus.Collector {
	bridgeOnce.Do(func() {
		bridge = newBridgeSink()
		cfg := gometrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false // the Go collector has those
		cfg.TimerGranularity = time.Second
		if _, err := gometrics.NewGlobal(cfg, bridge); err != nil {
			panic("go-metrics: " + err.Error()) // only a bad filter config fails, and there is none
		}
	})
	return bridge
}

func newBridgeSink() *bridgeSink {
	s := &bridgeSink{counters: map[string]prometheus.Counter{}, gauges: map[string]prometheus.Gauge{},
		histograms: map[string]prometheus.Observer{}}
	name := func(n string) string { return prometheus.BuildFQName(metricsNamespace, "gossip", n) }

	sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("sent_bytes_total"),
		Help: "Bytes memberlist sent, by transport (udp packets, tcp streams)."}, []string{"transport"})
	received := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("received_bytes_total"),
		Help: "Bytes memberlist received in UDP packets."}, []string{"transport"})
	streams := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("streams_total"),
		Help: "TCP streams memberlist opened (out) or accepted (in): push/pulls, fallback probes, large messages."}, []string{"direction"})
	state := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("state_messages_total"),
		Help: "alive, suspect and dead messages memberlist handled."}, []string{"type"})
	degraded := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("degraded_total"),
		Help: "Times memberlist's health degraded: probe (a probe failed) or timeout (a suspicion timed out without enough confirmations)."}, []string{"reason"})
	s.counters["memberlist.udp.sent"] = sent.WithLabelValues("udp")
	s.counters["memberlist.tcp.sent"] = sent.WithLabelValues("tcp")
	s.counters["memberlist.udp.received"] = received.WithLabelValues("udp")
	s.counters["memberlist.tcp.accept"] = streams.WithLabelValues("in")
	s.counters["memberlist.tcp.connect"] = streams.WithLabelValues("out")
	for _, t := range []string{"alive", "suspect", "dead"} {
		s.counters["memberlist.msg."+t] = state.WithLabelValues(t)
	}
	for _, r := range []string{"probe", "timeout"} {
		s.counters["memberlist.degraded."+r] = degraded.WithLabelValues(r)
	}

	durations := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	hist := func(key, n, help string, buckets []float64) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name(n), Help: help, Buckets: buckets})
		s.histograms[key] = h
		s.all = append(s.all, h)
	}
	hist("memberlist.probeNode", "probe_duration_seconds",
		"Time memberlist took to probe one node (direct ping, then indirect pings and a TCP fallback when it does not answer).", durations)
	hist("memberlist.gossip", "round_duration_seconds", "Time memberlist took for one gossip round.", durations)
	hist("memberlist.pushPullNode", "push_pull_duration_seconds", "Time memberlist took for one push/pull state exchange.", durations)
	hist("memberlist.size.remote", "push_pull_received_bytes", "Size of the state received in a push/pull (memberlist measures it in encrypted clusters only).",
		prometheus.ExponentialBuckets(256, 4, 9))
	hist("memberlist.queue.broadcasts", "membership_queue_messages",
		"memberlist's own broadcast queue (alive, suspect, dead messages) sampled at each gossip round.",
		[]float64{0, 1, 2, 5, 10, 25, 50, 100, 250, 1000})

	local := prometheus.NewGauge(prometheus.GaugeOpts{Name: name("push_pull_sent_bytes"),
		Help: "Size of the state this node sent in its last push/pull."})
	s.gauges["memberlist.size.local"] = local
	s.nodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name("nodes"),
		Help: "Nodes in memberlist's own view, by state (alive, suspect, dead, left); suspect ones are not yet failed."}, []string{"state"})
	for _, st := range []string{"alive", "suspect", "dead", "left"} {
		s.nodes.WithLabelValues(st)
	}
	s.all = append(s.all, sent, received, streams, state, degraded, local, s.nodes)
	return s
}

func (s *bridgeSink) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.all {
		c.Describe(ch)
	}
}

func (s *bridgeSink) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.all {
		c.Collect(ch)
	}
}

func key(parts []string) string { return strings.Join(parts, ".") }

func (s *bridgeSink) SetGauge(k []string, v float32) { s.SetGaugeWithLabels(k, v, nil) }

func (s *bridgeSink) SetGaugeWithLabels(k []string, v float32, labels []gometrics.Label) {
	name := key(k)
	if g, ok := s.gauges[name]; ok {
		g.Set(float64(v))
		return
	}
	if name == "memberlist.node.instances" {
		for _, l := range labels {
			if l.Name == "node_state" {
				if st := strings.ToLower(l.Value); st == "alive" || st == "suspect" || st == "dead" || st == "left" {
					s.nodes.WithLabelValues(st).Set(float64(v))
				}
			}
		}
	}
}

func (s *bridgeSink) EmitKey([]string, float32) {}

func (s *bridgeSink) IncrCounter(k []string, v float32) { s.IncrCounterWithLabels(k, v, nil) }

func (s *bridgeSink) IncrCounterWithLabels(k []string, v float32, _ []gometrics.Label) {
	if c, ok := s.counters[key(k)]; ok && v >= 0 {
		c.Add(float64(v))
	}
}

func (s *bridgeSink) AddSample(k []string, v float32) { s.AddSampleWithLabels(k, v, nil) }

func (s *bridgeSink) AddSampleWithLabels(k []string, v float32, _ []gometrics.Label) {
	if h, ok := s.histograms[key(k)]; ok {
		h.Observe(float64(v))
	}
}
