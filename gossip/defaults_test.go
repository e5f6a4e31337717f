package gossip

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
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
	cfg.Backlog, cfg.UserEventSizeLimit, cfg.Profile = -1, MaxMessageSizeLimit+1, "moon"
	err := cfg.Validate()
	for _, want := range []string{"backlog -1 is negative", "user event size limit 9217 out of range", `profile "moon"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to name %q", err, want)
		}
	}
}
