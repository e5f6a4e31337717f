package daemon

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfd/serfd/gossip"
	"github.com/serfd/serfd/internal/testutil"
)

// writeConfig writes the main file and drop-ins (name -> content) into a
// fresh directory and returns the main file's path.
func writeConfig(t *testing.T, main string, dropins map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(dropins) > 0 {
		if err := os.Mkdir(filepath.Join(dir, "config.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range dropins {
			if err := os.WriteFile(filepath.Join(dir, "config.d", name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return path
}

func TestLoadConfigShipped(t *testing.T) {
	cfg, err := LoadConfig("../config.hcl")
	if err != nil {
		t.Fatalf("LoadConfig(../config.hcl) = %v; want the shipped config to load", err)
	}
	if cfg.BindPort != 7946 || cfg.ControlSocket != "/run/serfd.sock" || cfg.HandlerTimeout != time.Minute ||
		cfg.SnapshotRetention != 72*time.Hour {
		t.Errorf("LoadConfig(../config.hcl) = bind port %d, socket %q, timeout %v, snapshot retention %v; want 7946, /run/serfd.sock, 1m0s, 72h0m0s",
			cfg.BindPort, cfg.ControlSocket, cfg.HandlerTimeout, cfg.SnapshotRetention)
	}
}

func TestLoadConfigDropinsOverride(t *testing.T) {
	path := writeConfig(t, `
node_name = "a"
tags = { role = "web", dc = "x" }
join = ["10.0.0.1"]
handlers { workers = 2 }
`, map[string]string{
		"10-b.hcl": `node_name = "b"
tags = { dc = "y" }
join = ["10.0.0.2:7000"]
`,
		"20-c.hcl": `handler "notify" {
  events = ["member-join", "user:deploy"]
  timeout = "10s"
  concurrency = 2
}
log { level = "debug" }
`,
		"README": `this is not read`,
	})
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig = %v", err)
	}
	if cfg.NodeName != "b" {
		t.Errorf("NodeName = %q; want b (the later drop-in wins)", cfg.NodeName)
	}
	if cfg.Tags["role"] != "web" || cfg.Tags["dc"] != "y" {
		t.Errorf("Tags = %v; want role=web dc=y (tags merge)", cfg.Tags)
	}
	if strings.Join(cfg.Join, " ") != "10.0.0.1 10.0.0.2:7000" {
		t.Errorf("Join = %v; want both addresses (lists append)", cfg.Join)
	}
	if cfg.HandlerWorkers != 2 || cfg.HandlerQueue != 1024 {
		t.Errorf("workers, queue = %d, %d; want 2, 1024", cfg.HandlerWorkers, cfg.HandlerQueue)
	}
	h := cfg.HandlerSettings["notify"]
	if h.Timeout != 10*time.Second || h.Concurrency != 2 || len(h.Events) != 2 {
		t.Errorf("handler notify = %+v; want timeout 10s, concurrency 2, 2 events", h)
	}
	if cfg.LogLevel != slog.LevelDebug {
		t.Errorf("LogLevel = %v; want DEBUG", cfg.LogLevel)
	}
	if len(cfg.Files) != 3 {
		t.Errorf("Files = %v; want the main file and two drop-ins", cfg.Files)
	}
}

// TestLoadConfigReportsEveryProblem checks that every problem in every file
// is reported at once, each with file:line,col.
func TestLoadConfigReportsEveryProblem(t *testing.T) {
	path := writeConfig(t, `node_name = "a"
bogus_key = 1
bind = "not-an-ip:7946"
profile = "moon"
handlers {
  workers = 0
  timeout = "ten seconds"
}
`, map[string]string{
		"99-bad.hcl": `handler "x" {
  events = ["member-explode"]
  concurrency = -1
}
log { level = "loud" }
`,
	})
	_, err := LoadConfig(path)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("LoadConfig = %v; want a *ConfigError", err)
	}
	want := []string{
		"config.hcl:2,1: Unsupported argument",
		"config.hcl:3,1: bind",
		"config.hcl:4,1: profile",
		"config.hcl:6,3: handlers workers = 0",
		"config.hcl:7,3: timeout \"ten seconds\" is not a duration",
		"99-bad.hcl:2,3: handler \"x\"",
		"99-bad.hcl:3,3: handler \"x\": concurrency = -1",
		"99-bad.hcl:5,7: log level",
	}
	got := ce.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("LoadConfig errors = \n%s\nwant a line containing %q", got, w)
		}
	}
}

func TestLoadConfigSyntaxError(t *testing.T) {
	path := writeConfig(t, "node_name = \"a\"\nhandlers {\n", nil)
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), "config.hcl:") {
		t.Fatalf("LoadConfig(unclosed block) = %v; want an error naming config.hcl:line,col", err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.hcl"))
	if err == nil || !strings.Contains(err.Error(), "nope.hcl") {
		t.Fatalf("LoadConfig(missing) = %v; want an error naming the file", err)
	}
}

func TestParseHostPort(t *testing.T) {
	cases := []struct {
		in       string
		ip       string
		port     int
		hasError bool
	}{
		{"0.0.0.0", "0.0.0.0", 7946, false},
		{"10.0.0.1:8000", "10.0.0.1", 8000, false},
		{"[::1]:7000", "::1", 7000, false},
		{"[::1]", "::1", 7946, false},
		{"host:1", "", 0, true},
		{"1.2.3.4:99999", "", 0, true},
	}
	for _, c := range cases {
		ip, port, err := parseHostPort(c.in, 7946)
		if (err != nil) != c.hasError || ip != c.ip || port != c.port {
			t.Errorf("parseHostPort(%q) = %q, %d, %v; want %q, %d, error %v", c.in, ip, port, err, c.ip, c.port, c.hasError)
		}
	}
}

func TestLoadConfigCluster(t *testing.T) {
	dir := t.TempDir()
	ring := filepath.Join(dir, "keyring.json")
	k1 := "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s="
	k2 := "HvY8ubRZMgafUOWvrOadwOckVa1wN3QWAo46FVKbVN8="
	if err := os.WriteFile(ring, []byte(`["`+k1+`","`+k2+`"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, `
keyring_file = "`+ring+`"
snapshot_path = "/var/lib/serfd/snapshot"
rejoin_after_leave = true
reconnect_timeout = "72h"
snapshot_retention = "168h"
coalesce_period = "0s"
user_event_size_limit = 1024
`, nil)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig = %v", err)
	}
	if len(cfg.EncryptKeys) != 2 || len(cfg.EncryptKeys[0]) != 32 || cfg.KeyringFile != ring {
		t.Errorf("keys = %d (first %d bytes), keyring %q; want 2 keys of 32 bytes from %s", len(cfg.EncryptKeys), len(cfg.EncryptKeys[0]), cfg.KeyringFile, ring)
	}
	if cfg.ReconnectTimeout != 72*time.Hour || cfg.CoalescePeriod != 0 || cfg.QuiescentPeriod != 0 || cfg.UserEventSizeLimit != 1024 ||
		!cfg.RejoinAfterLeave || cfg.SnapshotRetention != 168*time.Hour {
		t.Errorf("cluster settings = %v %v %v %d %v %v; want 72h 0s 0s (coalescing off) 1024 true 168h",
			cfg.ReconnectTimeout, cfg.CoalescePeriod, cfg.QuiescentPeriod, cfg.UserEventSizeLimit, cfg.RejoinAfterLeave, cfg.SnapshotRetention)
	}

	bad := writeConfig(t, `encrypt_key = "not base64!"
user_event_size_limit = 10000
tombstone_timeout = "-1s"
snapshot_path = "relative/snap"
snapshot_retention = "10s"
`, map[string]string{"10-both.hcl": `encrypt_key = "` + k1 + `"
keyring_file = "/nonexistent/ring.json"
`})
	_, err = LoadConfig(bad)
	for _, want := range []string{
		"config.hcl:1,1: encrypt_key: key is not valid base64",
		"config.hcl:2,1: user_event_size_limit = 10000 is out of range 64..9216",
		"config.hcl:3,1: tombstone_timeout \"-1s\" is out of range",
		"config.hcl:4,1: snapshot_path \"relative/snap\" is not an absolute path",
		"config.hcl:5,1: snapshot_retention \"10s\" is out of range 1m0s..8760h0m0s",
		"10-both.hcl:2,1: encrypt_key and keyring_file are both set",
		"10-both.hcl:2,1: keyring_file: open /nonexistent/ring.json",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig(bad cluster settings) = %v; want a line containing %q", err, want)
		}
	}
}

func TestLoadConfigAdminGroup(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "node_name = \"a\"\ncontrol { admin_group = \"root\" }\n", nil))
	if err != nil || cfg.AdminGroup != "root" || cfg.AdminGID != 0 || len(cfg.Warnings) != 0 {
		t.Errorf("LoadConfig(admin_group root) = %+v, %v; want group root, gid 0, no warning", cfg, err)
	}
	cfg, err = LoadConfig(writeConfig(t, "node_name = \"a\"\ncontrol { admin_group = \"no-such-group-xyz\" }\n", nil))
	if err != nil || cfg.AdminGID != -1 || len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "only root may") {
		t.Errorf("LoadConfig(admin_group missing) = gid %d, warnings %q, %v; want gid -1 and a warning that only root may", cfg.AdminGID, cfg.Warnings, err)
	}
	path := writeConfig(t, "node_name = \"a\"\ncontrol { admin_group = \"\" }\n", nil)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), path+":2,11: control admin_group is empty") {
		t.Errorf("LoadConfig(admin_group empty) = %v; want %s:2,11: control admin_group is empty", err, path)
	}
}

// A config.d that cannot be listed is an error naming it, not silently
// skipped: here it is a file.
func TestLoadConfigUnlistableDropins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte("node_name = \"n\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.d"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), "cannot list drop-ins") || !strings.Contains(err.Error(), "config.d") {
		t.Fatalf("LoadConfig with config.d a file = %v; want an error naming config.d", err)
	}
}

// Dotfiles in config.d (an editor's lock file, a hidden copy) are not read.
func TestLoadConfigSkipsDotfiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.hcl")
	if err := os.WriteFile(path, []byte("node_name = \"n\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "config.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{".#10-a.hcl": "bind = 5\n", ".hidden.hcl": "bogus = 1\n", "20-b.hcl": "tags = { role = \"web\" }\n"} {
		if err := os.WriteFile(filepath.Join(dir, "config.d", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig with dotfiles in config.d = %v; want them skipped", err)
	}
	if len(cfg.Files) != 2 || cfg.Tags["role"] != "web" {
		t.Errorf("files read = %v, tags = %v; want config.hcl and 20-b.hcl, role=web", cfg.Files, cfg.Tags)
	}
}

// handlers.spool defaults to "runs" beside the snapshot, follows a
// snapshot_path set in any file, can be turned off with "" and must be
// absolute.
func TestLoadConfigHandlerSpool(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	for _, tc := range []struct {
		config string
		want   string
	}{
		{`node_name = "a"`, ""},
		{`snapshot_path = "/var/lib/serfd/snapshot"`, "/var/lib/serfd/runs"},
		{"snapshot_path = \"/srv/s/snap\"\nhandlers { spool = \"/srv/q\" }", "/srv/q"},
		{"snapshot_path = \"/srv/s/snap\"\nhandlers { spool = \"\" }", ""},
		{`handlers { spool = "/srv/q" }`, "/srv/q"},
	} {
		cfg, err := LoadConfig(writeConfig(t, tc.config+"\n", nil))
		if err != nil || cfg.HandlerSpool != tc.want {
			t.Errorf("LoadConfig(%q) spool = %q, %v; want %q", tc.config, cfgSpool(cfg), err, tc.want)
		}
	}
	t.Setenv("STATE_DIRECTORY", "/var/lib/serfd")
	if cfg, err := LoadConfig(writeConfig(t, "node_name = \"a\"\n", nil)); err != nil || cfg.HandlerSpool != "/var/lib/serfd/runs" {
		t.Errorf("LoadConfig under StateDirectory spool = %q, %v; want /var/lib/serfd/runs", cfgSpool(cfg), err)
	}
	_, err := LoadConfig(writeConfig(t, "handlers {\n  spool = \"runs\"\n}\n", nil))
	if want := "config.hcl:2,3: handlers spool \"runs\" is not an absolute path"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("LoadConfig(relative spool) = %v; want a line containing %q", err, want)
	}
}

func cfgSpool(cfg *Config) string {
	if cfg == nil {
		return "<no config>"
	}
	return cfg.HandlerSpool
}

// Configuration and keyring files must be regular files, not group- or
// world-writable, owned by root or serfd's user: anything else is refused
// with a message naming the file and the fix, and a FIFO never blocks the
// load (nor so a reload or serfd -check).
func TestLoadConfigRefusesUntrustedFiles(t *testing.T) {
	type setup func(t *testing.T, path string)
	fifo := func(t *testing.T, path string) {
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writable := func(t *testing.T, path string) {
		if err := os.WriteFile(path, []byte("node_name = \"x\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	otherOwner := func(t *testing.T, path string) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a file another owner")
		}
		if err := os.WriteFile(path, []byte("node_name = \"x\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 54321, 54321); err != nil {
			t.Fatal(err)
		}
	}
	device := func(t *testing.T, path string) {
		if err := os.Symlink("/dev/zero", path); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		make  setup
		where string // "dropin", "main" or "keyring"
		want  string
	}{
		{"FIFO drop-in", fifo, "dropin", "not a regular file"},
		{"FIFO main file", fifo, "main", "not a regular file"},
		{"FIFO keyring", fifo, "keyring", "not a regular file"},
		{"device drop-in", device, "dropin", "not a regular file"},
		{"world-writable drop-in", writable, "dropin", "group- or world-writable (mode 0666)"},
		{"world-writable keyring", writable, "keyring", "group- or world-writable (mode 0666)"},
		{"drop-in of another user", otherOwner, "dropin", "owned by uid 54321"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			main := filepath.Join(dir, "config.hcl")
			ring := filepath.Join(dir, "ring.json")
			target := map[string]string{"main": main, "dropin": filepath.Join(dir, "config.d", "50-x.hcl"), "keyring": ring}[tc.where]
			if err := os.Mkdir(filepath.Join(dir, "config.d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.where != "main" {
				body := "node_name = \"n\"\n"
				if tc.where == "keyring" {
					body += `keyring_file = "` + ring + `"` + "\n"
				}
				if err := os.WriteFile(main, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tc.make(t, target)
			done := make(chan error, 1)
			go func() { _, err := LoadConfig(main); done <- err }()
			err := testutil.Recv(t, done, 10*time.Second, "LoadConfig")
			if err == nil || !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "chmod go-w") {
				t.Errorf("LoadConfig with %s = %v; want an error naming %s, %q and the fix", tc.name, err, target, tc.want)
			}
		})
	}
}

// Join addresses that can never work are configuration errors with
// file:line, found without resolving anything; IPs, bracketed IPv6 and DNS
// names, with or without a port, pass.
func TestLoadConfigJoinAddresses(t *testing.T) {
	for _, good := range []string{"10.0.0.1", "10.0.0.1:7946", "[fe80::1]:7946", "fe80::1", "[::1]", "serf.internal",
		"serf.internal:7946", "_serf._tcp.example.internal", "node-1.example.org."} {
		if _, err := LoadConfig(writeConfig(t, `join = ["`+good+`"]`+"\n", nil)); err != nil {
			t.Errorf("join %q: %v; want it accepted", good, err)
		}
	}
	for _, bad := range []string{"1.2.3.4:99999", "1.2.3.4:abc", "a b", "[::1", "host:-1", "host:0", "", ":7946",
		"-bad.example", "x..y", "ünï.example", "1.2.3.4:7946:1"} {
		_, err := LoadConfig(writeConfig(t, `join = ["`+bad+`"]`+"\n", nil))
		if err == nil || !strings.Contains(err.Error(), "config.hcl:1,1: join") {
			t.Errorf("join %q: %v; want a join problem at config.hcl:1,1", bad, err)
		}
	}
}

// A coalesce period with a zero quiescent period is reported where the
// zero was set.
func TestLoadConfigQuiescentConflictHasPosition(t *testing.T) {
	path := writeConfig(t, "node_name = \"n\"\n", map[string]string{"20-q.hcl": "\nuser_quiescent_period = \"0s\"\n"})
	_, err := LoadConfig(path)
	want := filepath.Join(filepath.Dir(path), "config.d", "20-q.hcl") + ":2,1: user_coalesce_period is 3s but user_quiescent_period is 0s"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("LoadConfig = %v; want %q", err, want)
	}
}

// A config.d that others may write to is refused, naming it and the fix.
func TestLoadConfigRefusesWritableDropinDir(t *testing.T) {
	path := writeConfig(t, "node_name = \"n\"\n", map[string]string{"10-a.hcl": "tags = { a = \"1\" }\n"})
	dir := filepath.Join(filepath.Dir(path), "config.d")
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), dir+": refused: group- or world-writable (mode 0777)") ||
		!strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("LoadConfig with a world-writable config.d = %v; want it refused with the fix", err)
	}
}

// An rpc block serves Serf's RPC on loopback by default; a bad address or
// a token file others may read is an error naming it.
func TestLoadConfigRPC(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "node_name = \"n\"\nrpc {}\n", nil))
	if err != nil || cfg.RPCAddr != "127.0.0.1:7373" || cfg.RPCAuth != "" {
		t.Errorf("rpc {} = %+v, %v; want 127.0.0.1:7373 without auth", cfg, err)
	}
	if cfg, err := LoadConfig(writeConfig(t, "node_name = \"n\"\n", nil)); err != nil || cfg.RPCAddr != "" {
		t.Errorf("no rpc block: RPCAddr %q, %v; want off", cfg.RPCAddr, err)
	}
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok")
	if err := os.WriteFile(tok, []byte("abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]string{
		`rpc { address = "localhost:7373" }`: `rpc address: "localhost:7373": "localhost" is not an IP address`,
		`rpc { address = "127.0.0.1:0" }`:    `port "0" is not a number from 1 to 65535`,
		`rpc { auth_file = "` + tok + `" }`:  "readable by group or others (mode 0644) (fix: chmod 0600",
		`rpc { auth_file = "/nonexistent" }`: "rpc auth_file",
	} {
		_, err := LoadConfig(writeConfig(t, "node_name = \"n\"\n"+body+"\n", nil))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "config.hcl:2,") {
			t.Errorf("%s: %v; want %q at config.hcl:2", body, err, want)
		}
	}
	if err := os.Chmod(tok, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = LoadConfig(writeConfig(t, "node_name = \"n\"\nrpc { auth_file = \""+tok+"\" }\n", nil))
	if err != nil || cfg.RPCAuth != "abc" {
		t.Errorf("rpc with a 0600 token file: auth %q, %v; want abc", cfg.RPCAuth, err)
	}
}

// A handler block's tags load as written; an expression that does not
// compile and an empty tag name are each reported with their place, and
// the pool's compiler (compileHandlerTags) matches whole values.
func TestLoadConfigHandlerTags(t *testing.T) {
	path := writeConfig(t, `handler "deploy" {
  events = ["member-join", "query:deploy"]
  tags   = { role = "web", dc = "eu-.*" }
}
`, nil)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig = %v", err)
	}
	tags := cfg.HandlerSettings["deploy"].Tags
	if len(tags) != 2 || tags["role"] != "web" || tags["dc"] != "eu-.*" {
		t.Errorf("handler deploy Tags = %v; want role=web, dc=eu-.*", tags)
	}
	match, err := compileHandlerTags(tags)
	if err != nil {
		t.Fatalf("compileHandlerTags(%v) = %v", tags, err)
	}
	for _, tc := range []struct {
		tags map[string]string
		want bool
	}{
		{map[string]string{"role": "web", "dc": "eu-west"}, true},
		{map[string]string{"role": "web-2", "dc": "eu-west"}, false},
		{map[string]string{"role": "web", "dc": "us-eu-1"}, false},
		{map[string]string{"role": "web"}, false},
	} {
		if got := match(tc.tags); got != tc.want {
			t.Errorf("handler deploy's tags match %v = %v; want %v", tc.tags, got, tc.want)
		}
	}

	// No tags, or an empty map: none.
	path = writeConfig(t, `handler "a" { events = ["user"] }
handler "b" { tags = {} }
`, nil)
	if cfg, err = LoadConfig(path); err != nil {
		t.Fatalf("LoadConfig = %v", err)
	}
	if a, b := cfg.HandlerSettings["a"].Tags, cfg.HandlerSettings["b"].Tags; a != nil || b != nil {
		t.Errorf("Tags of handlers without tags = %v, %v; want nil", a, b)
	}

	path = writeConfig(t, `handler "deploy" {
  events = ["user"]
  tags   = { role = "web(", "" = "x", dc = "[eu" }
}
`, nil)
	_, err = LoadConfig(path)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("LoadConfig(bad tags) = %v; want a *ConfigError", err)
	}
	want := []string{
		`config.hcl:3,3: handler "deploy": tags: a tag name is empty`,
		`config.hcl:3,3: handler "deploy": tag filter dc="[eu": error parsing regexp: missing closing ]`,
		`config.hcl:3,3: handler "deploy": tag filter role="web(": error parsing regexp: missing closing )`,
	}
	if len(ce.Problems) != len(want) {
		t.Errorf("LoadConfig(bad tags) = \n%s\nwant %d problems", ce, len(want))
	}
	for i, w := range want {
		if i >= len(ce.Problems) || !strings.Contains(ce.Problems[i], w) {
			t.Errorf("LoadConfig(bad tags) = \n%s\nwant line %d to contain %q", ce, i+1, w)
		}
	}
}

// query_response_stream_size_limit defaults to gossip's 1 MiB, takes
// 128..16 MiB, and may not be below query_response_size_limit: the
// problem names where it was set.
func TestLoadConfigQueryResponseStreamSizeLimit(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "node_name = \"n\"\n", nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QueryResponseStreamSizeLimit != gossip.DefaultConfig().QueryResponseStreamSizeLimit || cfg.QueryResponseStreamSizeLimit != 1<<20 {
		t.Errorf("default query_response_stream_size_limit = %d; want gossip's default, 1 MiB", cfg.QueryResponseStreamSizeLimit)
	}
	cfg, err = LoadConfig(writeConfig(t, "node_name = \"n\"\nquery_response_stream_size_limit = 4194304\n", nil))
	if err != nil || cfg.QueryResponseStreamSizeLimit != 4<<20 {
		t.Errorf("query_response_stream_size_limit = 4194304: %v, %v; want 4 MiB", cfg, err)
	}
	for _, c := range []struct{ body, want string }{
		{"query_response_stream_size_limit = 16777217\n", "config.hcl:2,1: query_response_stream_size_limit = 16777217 is out of range 128..16777216"},
		{"query_response_stream_size_limit = 1000\n", "config.hcl:2,1: query_response_stream_size_limit = 1000 is below query_response_size_limit = 1024"},
		{"query_response_size_limit = 4096\nquery_response_stream_size_limit = 2048\n", "config.hcl:3,1: query_response_stream_size_limit = 2048 is below query_response_size_limit = 4096"},
	} {
		_, err := LoadConfig(writeConfig(t, "node_name = \"n\"\n"+c.body, nil))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadConfig(%q) = %v; want %q", c.body, err, c.want)
		}
	}
	cfg, err = LoadConfig(writeConfig(t, "node_name = \"n\"\nquery_response_stream_size_limit = 1024\n", nil))
	if err != nil || cfg.QueryResponseStreamSizeLimit != 1024 {
		t.Errorf("query_response_stream_size_limit = query_response_size_limit: %v; want accepted (no answer by stream)", err)
	}
}
