package daemon

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// FuzzLoadConfig loads an arbitrary main file and drop-in. A config that
// loads loads the same again and holds usable values (handler tags the
// pool compiles among them); one that does not
// is a *ConfigError whose every problem names the file, line and column,
// or the setting the problem is about.
func FuzzLoadConfig(f *testing.F) {
	shipped, err := os.ReadFile("../config.hcl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(shipped), "")
	f.Add(`node_name = "a"
bind = "127.0.0.1:7946"
tags = { role = "web" }
handlers { workers = 2  timeout = "5s" }
handler "notify" { events = ["member-join", "user:deploy"]  timeout = "1s" }
log { level = "debug" }`, `tags = { dc = "east" }`)
	f.Add(`node_name = ""`, `bogus = 1`)
	f.Add(`bind = "nope:99999"`, `handler "x" { events = ["user:"] }`)
	f.Add(`coalesce_period = "1s"
quiescent_period = "0s"`, `handlers { timeout = "forever" }`)
	f.Add("node_name = \"a\"\x00\n{", "handler \"a\" {}\nhandler \"a\" {}")
	f.Add(`encrypt_key = "AAAAAAAAAAAAAAAAAAAAAA=="`, `join = ["127.0.0.2", 1]`)
	f.Add(`handler "d" { tags = { role = "web", dc = "eu-.*" } }`, `handler "e" { tags = { role = "(", "" = "x", n = 1 } }`)
	f.Fuzz(func(t *testing.T, main, dropin string) {
		// A keyring_file would have the loader read any path the input
		// names (/dev/zero among them); FuzzReadKeyring covers its format.
		if strings.Contains(main+dropin, "keyring") {
			t.Skip("names a keyring file")
		}
		path := writeConfig(t, main, map[string]string{"10-fuzz.hcl": dropin})
		files := []string{path, filepath.Join(filepath.Dir(path), "config.d", "10-fuzz.hcl")}
		cfg, err := LoadConfig(path)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("LoadConfig(%q, %q) = %v (%T); want a *ConfigError with problems", main, dropin, err, err)
			}
			at := regexp.MustCompile(`^(` + regexp.QuoteMeta(files[0]) + `|` + regexp.QuoteMeta(files[1]) + `):\d+,\d+: \S`)
			setting := regexp.MustCompile(`^(user_)?coalesce_period |^node_name is not set`)
			for _, p := range ce.Problems {
				if !at.MatchString(p) && !setting.MatchString(p) {
					t.Fatalf("LoadConfig(%q, %q) problem %q; want \"file:line,col: message\" or one naming the setting", main, dropin, p)
				}
			}
			return
		}
		if !reflect.DeepEqual(cfg.Files, files) {
			t.Fatalf("LoadConfig(%q, %q) read %v; want %v", main, dropin, cfg.Files, files)
		}
		if cfg.NodeName == "" || cfg.BindPort < 0 || cfg.BindPort > 65535 || cfg.AdvertisePort < 0 || cfg.AdvertisePort > 65535 {
			t.Fatalf("LoadConfig(%q, %q) accepted node %q, bind port %d, advertise port %d", main, dropin, cfg.NodeName, cfg.BindPort, cfg.AdvertisePort)
		}
		for _, d := range []time.Duration{cfg.ReconnectInterval, cfg.ReconnectTimeout, cfg.TombstoneTimeout, cfg.SnapshotRetention, cfg.CoalescePeriod,
			cfg.QuiescentPeriod, cfg.UserCoalescePeriod, cfg.UserQuiescentPeriod, cfg.HandlerTimeout} {
			if d < 0 {
				t.Fatalf("LoadConfig(%q, %q) accepted a negative duration %v", main, dropin, d)
			}
		}
		for _, k := range cfg.EncryptKeys {
			if l := len(k); l != 16 && l != 24 && l != 32 {
				t.Fatalf("LoadConfig(%q, %q) accepted a %d-byte key", main, dropin, l)
			}
		}
		// What loads, the handler pool takes.
		for name, h := range cfg.HandlerSettings {
			if _, err := compileHandlerTags(h.Tags); err != nil {
				t.Fatalf("LoadConfig(%q, %q) accepted handler %q with tags %q the pool refuses: %v", main, dropin, name, h.Tags, err)
			}
		}
		again, err := LoadConfig(path)
		if err != nil || !reflect.DeepEqual(again, cfg) {
			t.Fatalf("LoadConfig(%q, %q) twice = %+v, then %+v, %v", main, dropin, cfg, again, err)
		}
	})
}

// FuzzReadKeyring reads an arbitrary keyring file. A failure names the
// file; what is read is at least one key of a valid size, and written back
// in the same format reads back the same.
func FuzzReadKeyring(f *testing.F) {
	k16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	k32 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	for _, seed := range []string{
		`["` + k16 + `"]`, `["` + k32 + `","` + k16 + `"]`, `[]`, `{}`, `["x"]`, `["` + k16 + `", 1]`, ``, `null`,
		`["AAAA"]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "keys.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		keys, err := readKeyring(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("readKeyring(%q) = %v; want an error naming %s", data, err, path)
			}
			return
		}
		if len(keys) == 0 {
			t.Fatalf("readKeyring(%q) = no keys, nil; want an error", data)
		}
		encoded := make([]string, len(keys))
		for i, k := range keys {
			if l := len(k); l != 16 && l != 24 && l != 32 {
				t.Fatalf("readKeyring(%q) accepted a %d-byte key", data, l)
			}
			encoded[i] = base64.StdEncoding.EncodeToString(k)
		}
		out, err := json.Marshal(encoded)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := readKeyring(path)
		if err != nil || !reflect.DeepEqual(back, keys) {
			t.Fatalf("readKeyring of %q written back = %x, %v; want %x", out, back, err, keys)
		}
	})
}

// FuzzSerfJSON loads an arbitrary Serf JSON configuration from config.d.
// One that does not load is a *ConfigError whose every problem names the
// file, line and column (or the setting); one that loads is turned by
// Migrate into HCL that loads to the same configuration.
func FuzzSerfJSON(f *testing.F) {
	f.Add(serfAgentJSON)
	f.Add(`{"node_name": "a", "tags": {"${x}": "%{y}", "a b": "\"q\""}, "event_handlers": ["echo ${A} %{B}", "user:x=a=b"]}`)
	f.Add(`{"node_name": "a", "bind": "127.0.0.1", "start_join": [], "retry_join": ["127.0.0.2:1"], "log_level": "err"}`)
	f.Add(`{"node_name": 1, "nope": null, "node_name": "b"}`)
	f.Add(`{"reconnect_timeout": "1h", "tombstone_timeout": "x", "mdns": {"disable_ipv4": true}}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, src string) {
		// Paths would have the loader read whatever the input names.
		if strings.Contains(src, "keyring") || strings.Contains(src, "rpc_auth") || strings.Contains(src, `\u`) {
			t.Skip("names a file, or escapes a key")
		}
		path := writeConfig(t, `node_name = "fuzz"`, map[string]string{"10-fuzz.json": src})
		jsonPath := filepath.Join(filepath.Dir(path), "config.d", "10-fuzz.json")
		want, err := LoadConfig(path)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("LoadConfig(%q) = %v (%T); want a *ConfigError with problems", src, err, err)
			}
			at := regexp.MustCompile(`^` + regexp.QuoteMeta(jsonPath) + `:\d+,\d+: \S`)
			setting := regexp.MustCompile(`^(user_)?coalesce_period |^node_name is not set`)
			for _, p := range ce.Problems {
				if !at.MatchString(p) && !setting.MatchString(p) {
					t.Fatalf("LoadConfig(%q) problem %q; want \"file:line,col: message\"", src, p)
				}
			}
			return
		}
		var out strings.Builder
		if _, err := Migrate(jsonPath, &out); err != nil {
			t.Fatalf("Migrate(%q) = %v; the configuration loaded", src, err)
		}
		hclPath := writeConfig(t, `node_name = "fuzz"`, map[string]string{"10-fuzz.hcl": out.String()})
		got, err := LoadConfig(hclPath)
		if err != nil {
			t.Fatalf("migrated %q to\n%s\nwhich does not load: %v", src, out.String(), err)
		}
		for _, c := range []*Config{want, got} {
			c.Files, c.Warnings = nil, nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("migrated %q to\n%s\nwhich loads to\n%+v\nwant\n%+v", src, out.String(), got, want)
		}
	})
}
