package gossip

import (
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// DefaultConfig is exactly what Create fills into a Config left zero
// (but for the port: zero asks for a free one), so callers that start
// from it and Create agree on every default.
func TestDefaultConfigIsWhatCreateApplies(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	got := Config{NodeName: "d1", Logger: logger}
	if _, err := checkConfig(&got); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.NodeName, want.Logger, want.BindPort = "d1", logger, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Create's defaults = %+v\nDefaultConfig() = %+v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeName, cfg.Logger = "d1", slog.New(slog.DiscardHandler)
	if err := cfg.Validate(); err != nil {
		t.Errorf("DefaultConfig() with a name and a logger: %v; want valid", err)
	}
	cfg.Backlog, cfg.UserEventSizeLimit, cfg.Profile, cfg.TimeScale = -1, MaxMessageSizeLimit+1, "moon", math.NaN()
	err := cfg.Validate()
	for _, want := range []string{"backlog -1 is negative", "user event size limit 9217 out of range", `profile "moon"`,
		"time scale NaN is not in 0..100"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to name %q", err, want)
		}
	}
}

// TestTimeScaleStretchesProtocolPeriods: TimeScale multiplies the
// profile's periods and timeouts and nothing else; 0 and 1 keep them.
func TestTimeScaleStretchesProtocolPeriods(t *testing.T) {
	periods := func(scale float64) []time.Duration {
		t.Helper()
		cfg := DefaultConfig()
		cfg.NodeName, cfg.Logger, cfg.TimeScale = "d1", slog.New(slog.DiscardHandler), scale
		mc, err := checkConfig(&cfg)
		if err != nil {
			t.Fatalf("time scale %v: %v", scale, err)
		}
		if mc.GossipNodes != 3 || mc.SuspicionMult != 4 || mc.RetransmitMult != 4 {
			t.Errorf("time scale %v changed fan-out %d, suspicion mult %d or retransmit mult %d", scale,
				mc.GossipNodes, mc.SuspicionMult, mc.RetransmitMult)
		}
		return []time.Duration{mc.ProbeInterval, mc.ProbeTimeout, mc.GossipInterval, mc.GossipToTheDeadTime,
			mc.PushPullInterval, mc.TCPTimeout}
	}
	lan := periods(0)
	if one := periods(1); !slices.Equal(one, lan) {
		t.Errorf("time scale 1: %v; want the profile's %v", one, lan)
	}
	four := periods(4)
	for i := range lan {
		if four[i] != 4*lan[i] {
			t.Errorf("time scale 4: period %d is %v; want 4 × %v", i, four[i], lan[i])
		}
	}
}

// Every profile compresses, as Serf's do; Uncompressed turns it off.
func TestUncompressed(t *testing.T) {
	for _, profile := range []string{"lan", "wan", "local"} {
		for _, off := range []bool{false, true} {
			cfg := DefaultConfig()
			cfg.NodeName, cfg.Logger, cfg.Profile, cfg.Uncompressed = "d1", slog.New(slog.DiscardHandler), profile, off
			mc, err := checkConfig(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			if mc.EnableCompression == off {
				t.Errorf("profile %s, Uncompressed %v: memberlist compression %v", profile, off, mc.EnableCompression)
			}
		}
	}
}
