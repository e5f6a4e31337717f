// Package benchresults is the format of make bench's results file, written
// by BenchmarkScale (daemon/serfd) and read by internal/benchplot: one
// definition for both sides.
package benchresults

// Record is one scenario run: one kind, one size, one iteration.
type Record struct {
	Kind  string `json:"kind"`
	N     int    `json:"n"`
	Iter  int    `json:"iter"`
	First bool   `json:"first"` // this kind ran first in its iteration
	// JoinMs is the mean duration of one CLI join.
	JoinMs float64 `json:"join_ms"`
	// ConvergeMs: from the return of the last join until every node
	// listed N alive.
	ConvergeMs float64 `json:"converge_ms"`
	// EventMs: for every node, from just before the CLI that sends the
	// user event starts until that node's handler wrote its time stamp;
	// sorted.
	EventMs []float64 `json:"event_ms"`
	// DetectMs: from kill -9 of one node until every other node listed
	// it failed.
	DetectMs float64 `json:"detect_ms"`
	// CPUPct is every node's CPU time (utime+stime) over the idle
	// window, in percent of one core; RSSKiB its VmRSS at the window's
	// end, AnonKiB the anonymous part of it (RssAnon: heap, stacks); the
	// rest is mostly the binary's own mapped pages.
	CPUPct  []float64 `json:"cpu_pct"`
	RSSKiB  []int     `json:"rss_kib"`
	AnonKiB []int     `json:"rss_anon_kib,omitempty"`
	IdleSec float64   `json:"idle_s"`
	// Load1 is /proc/loadavg's 1-minute value when the scenario started
	// (before its processes); Busy the fraction of all CPUs' time that was
	// not idle or iowait over the whole scenario (from /proc/stat), its own
	// processes included; CPUs the number of CPUs.
	Load1 float64 `json:"load1"`
	Busy  float64 `json:"busy"`
	CPUs  int     `json:"cpus"`
	// Start is when the scenario started, RFC 3339.
	Start string `json:"start"`
}

// File is what BenchmarkScale writes to SERFD_BENCH_OUT (results.json):
// the records with what they were measured with.
type File struct {
	Serfd        string   `json:"serfd"`
	Serf         string   `json:"serf"`
	SerfVersion  string   `json:"serf_version"`
	GoVersion    string   `json:"go_version"`
	IdleSec      float64  `json:"idle_s"`
	JoinPaceMs   float64  `json:"join_pace_ms"`
	Records      []Record `json:"records"`
	LoadAtFinish float64  `json:"load1_at_finish"`
}
