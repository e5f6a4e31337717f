package daemon

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestLoadConfigMetrics(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "node_name = \"n\"\n", nil))
	if err != nil || cfg.MetricsAddr != "" {
		t.Errorf("no metrics block: MetricsAddr %q, %v; want off", cfg.MetricsAddr, err)
	}
	cfg, err = LoadConfig(writeConfig(t, "node_name = \"n\"\nmetrics {}\n", nil))
	if err != nil || cfg.MetricsAddr != "127.0.0.1:7374" {
		t.Errorf("metrics {} = %q, %v; want 127.0.0.1:7374", cfg.MetricsAddr, err)
	}
	cfg, err = LoadConfig(writeConfig(t, "node_name = \"n\"\nmetrics {\n  address = \"0.0.0.0:9999\"\n  event_names = [\"deploy\"]\n}\n",
		map[string]string{"off.hcl": "metrics {\n  address = \"\"\n}\n"}))
	if err != nil || cfg.MetricsAddr != "" || !slices.Equal(cfg.MetricsEventNames, []string{"deploy"}) {
		t.Errorf("metrics turned off by a drop-in = %q %v, %v; want off, names kept", cfg.MetricsAddr, cfg.MetricsEventNames, err)
	}
	many := make([]string, maxMetricsEventNames+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprint("e", i))
	}
	for body, want := range map[string]string{
		`metrics { address = "localhost:7374" }`:                      `metrics address: "localhost:7374": "localhost" is not an IP address`,
		`metrics { address = "127.0.0.1:99999" }`:                     `port "99999" is not a number from 1 to 65535`,
		`metrics { event_names = ["_other"] }`:                        `"_other" cannot be an event name here`,
		`metrics { event_names = [""] }`:                              `"" cannot be an event name here`,
		`metrics { event_names = [` + strings.Join(many, ",") + `] }`: "at most 100 may be counted by name",
	} {
		_, err := LoadConfig(writeConfig(t, "node_name = \"n\"\n"+body+"\n", nil))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "config.hcl:2,") {
			t.Errorf("%.60s: %v; want %q at config.hcl:2", body, err, want)
		}
	}
}
