package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// A Serf 0.10 agent configuration in JSON, as a Serf user has it.
const serfAgentJSON = `{
  "node_name": "web-1",
  "bind": "127.0.0.1:7999",
  "encrypt_key": "cg8StVXbQJ0gPvMd9o7yrg==",
  "role": "web",
  "tags": {"dc": "east"},
  "start_join": ["127.0.0.2:7946"],
  "retry_join": ["127.0.0.3"],
  "event_handlers": [
    "user:deploy=/usr/local/bin/deploy.sh --now",
    "member-join,member-leave=/usr/local/bin/deploy.sh",
    "/usr/local/bin/log-all"
  ],
  "log_level": "DEBUG",
  "replay_on_join": true,
  "reconnect_timeout": "8h",
  "leave_on_terminate": true,
  "retry_max_attempts": 5,
  "statsd_addr": "127.0.0.1:8125",
  "protocol": 5
}
`

func TestLoadSerfJSONConfig(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "", map[string]string{"serf.json": serfAgentJSON})
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig = %v; want a Serf JSON configuration accepted", err)
	}
	if cfg.NodeName != "web-1" || cfg.BindAddr != "127.0.0.1" || cfg.BindPort != 7999 {
		t.Errorf("node/bind = %s %s:%d; want web-1 127.0.0.1:7999", cfg.NodeName, cfg.BindAddr, cfg.BindPort)
	}
	if len(cfg.EncryptKeys) != 1 || len(cfg.EncryptKeys[0]) != 16 {
		t.Errorf("EncryptKeys = %v; want one 16-byte key", cfg.EncryptKeys)
	}
	if cfg.Tags["role"] != "web" || cfg.Tags["dc"] != "east" {
		t.Errorf("Tags = %v; want role=web (from role) and dc=east", cfg.Tags)
	}
	if want := []string{"127.0.0.2:7946", "127.0.0.3"}; !slices.Equal(cfg.Join, want) {
		t.Errorf("Join = %v; want %v (start_join then retry_join)", cfg.Join, want)
	}
	if !cfg.ReplayOnJoin || cfg.ReconnectTimeout != 8*time.Hour || cfg.LogLevel.String() != "DEBUG" {
		t.Errorf("replay/reconnect/log = %v %s %s; want true 8h DEBUG", cfg.ReplayOnJoin, cfg.ReconnectTimeout, cfg.LogLevel)
	}
	if cfg.RPCAddr != "127.0.0.1:7373" {
		t.Errorf("RPCAddr = %q; want Serf's default 127.0.0.1:7373 (a Serf agent always serves its RPC)", cfg.RPCAddr)
	}
	h := cfg.HandlerSettings
	if len(h) != 3 || h["deploy.sh"].Command != "/usr/local/bin/deploy.sh --now" || !slices.Equal(h["deploy.sh"].Events, []string{"user:deploy"}) ||
		h["deploy.sh-2"].Command != "/usr/local/bin/deploy.sh" || !slices.Equal(h["deploy.sh-2"].Events, []string{"member-join,member-leave"}) ||
		h["log-all"].Command != "/usr/local/bin/log-all" || !slices.Equal(h["log-all"].Events, []string{"*"}) {
		t.Errorf("HandlerSettings = %+v; want deploy.sh, deploy.sh-2 and log-all command handlers with Serf's filters", h)
	}
	warn := strings.Join(cfg.Warnings, "\n")
	wantAll(t, "warnings", warn,
		"serf.json:5,3: role: deprecated",
		"serf.json:7,3: start_join: joined in the background",
		"serf.json:18,3: retry_max_attempts: serfd keeps retrying",
		"serf.json:19,3: statsd_addr: not supported")
	if strings.Contains(warn, "leave_on_terminate") || strings.Contains(warn, "protocol") {
		t.Errorf("warnings name keys whose value serfd follows anyway:\n%s", warn)
	}
}

// Every problem of a JSON file is reported at once with file:line,col, as
// for HCL: wrong types, unknown keys, values the shared rules refuse.
func TestLoadSerfJSONConfigProblems(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "", map[string]string{"serf.json": `{
  "node_name": 3,
  "bind": "nowhere:x",
  "snapshot_dir": "/tmp",
  "event_handlers": ["usr:deploy=/bin/true"],
  "protocol": 9,
  "tags": {"a": 1},
  "mdns": {"interface": "lo", "disable_ipv4": true, "disable_ipv6": true},
  "node_name": "again"
}`})
	_, err := LoadConfig(path)
	if err == nil {
		t.Fatal("LoadConfig = nil; want every problem")
	}
	wantAll(t, "problems", err.Error(),
		"serf.json:2,3: node_name: want a string",
		"serf.json:3,3: bind \"nowhere:x\"",
		"serf.json:4,3: snapshot_dir: unknown key",
		"serf.json:5,3: handler \"true\"",
		"serf.json:6,3: protocol: 9 is out of range 2..5",
		"serf.json:7,3: tags: want an object of strings",
		"serf.json:8,3: mdns: disable_ipv4 and disable_ipv6 are both true",
		"serf.json:9,3: node_name: set twice in this file")
	for _, bad := range []string{"{", `{"a": 1} x`, "[1]", ""} {
		p := writeConfig(t, "", map[string]string{"x.json": bad})
		if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "x.json:") {
			t.Errorf("LoadConfig(%q) = %v; want an error naming x.json:line,col", bad, err)
		}
	}
}

// A JSON file given as the main configuration is read the same way, and
// HCL drop-ins beside it still apply; the tags of both merge.
func TestLoadSerfJSONAsMainConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "serf.json")
	if err := os.WriteFile(path, []byte(`{"node_name": "n1", "tags": {"a": "1"}, "rpc_addr": "127.0.0.1:17373", "rpc_auth": "s3cret"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "config.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.d", "10.hcl"), []byte("tags = { b = \"2\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "n1" || cfg.Tags["a"] != "1" || cfg.Tags["b"] != "2" || cfg.RPCAddr != "127.0.0.1:17373" || cfg.RPCAuth != "s3cret" {
		t.Errorf("cfg = node %s tags %v rpc %s auth %q; want n1, a and b, 127.0.0.1:17373, s3cret", cfg.NodeName, cfg.Tags, cfg.RPCAddr, cfg.RPCAuth)
	}
	if w := strings.Join(cfg.Warnings, "\n"); !strings.Contains(w, "rpc_auth: the token is readable by other users") {
		t.Errorf("warnings = %q; want one about the readable token", w)
	}
}

// serfd migrate turns a Serf JSON configuration into HCL that loads to the
// same configuration (the token moved to its auth_file), commands with
// HCL's template characters included.
func TestMigrateLoadsTheSameConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "serf.json")
	src := `{
  "node_name": "web-1", "bind": "127.0.0.1:7999", "advertise": "127.0.0.9",
  "encrypt_key": "cg8StVXbQJ0gPvMd9o7yrg==", "role": "web", "tags": {"dc": "east", "a.b": "x"},
  "tags_file": "/var/lib/serf/tags.json", "start_join": ["127.0.0.2:7946"], "retry_join": ["127.0.0.3"],
  "rpc_addr": "127.0.0.1:17373", "rpc_auth": "tok", "log_level": "ERR", "profile": "wan",
  "event_handlers": ["user:deploy=echo ${SERF_EVENT} %{x} \"q\" >> /tmp/x", "member-join=/usr/local/bin/log-all"],
  "reconnect_interval": "10s", "reconnect_timeout": "8h", "tombstone_timeout": "2h",
  "replay_on_join": true, "rejoin_after_leave": true, "disable_coordinates": true, "snapshot_path": "/var/lib/serf/snap",
  "user_event_size_limit": 1024, "query_size_limit": 2048, "query_response_size_limit": 4096,
  "discover": "prod", "mdns": {"disable_ipv6": true},
  "statsd_addr": "127.0.0.1:8125"
}`
	if err := os.WriteFile(jsonPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := LoadConfig(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	note, err := Migrate(jsonPath, &out)
	if err != nil {
		t.Fatalf("Migrate = %v", err)
	}
	if !strings.Contains(note, DefaultRPCAuthFile) {
		t.Errorf("note = %q; want it to say where the token goes", note)
	}
	if !strings.Contains(out.String(), "statsd_addr: not supported") {
		t.Errorf("HCL lacks the note on statsd_addr:\n%s", out.String())
	}
	tokenPath := filepath.Join(dir, "rpc-auth")
	if err := os.WriteFile(tokenPath, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hclPath := filepath.Join(t.TempDir(), "config.hcl") // not beside the JSON, which would be read too
	hcl := strings.ReplaceAll(out.String(), DefaultRPCAuthFile, tokenPath)
	if err := os.WriteFile(hclPath, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(hclPath)
	if err != nil {
		t.Fatalf("LoadConfig(migrated HCL) = %v\n%s", err, hcl)
	}
	for _, c := range []*Config{want, got} {
		c.Files, c.Warnings, c.RPCAuthFile = nil, nil, ""
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("migrated HCL loads to\n%+v\nwant (from the JSON)\n%+v\nHCL:\n%s", got, want, hcl)
	}
	if bad := writeConfig(t, "", nil); bad != "" {
		jsonBad := filepath.Join(filepath.Dir(bad), "bad.json")
		if err := os.WriteFile(jsonBad, []byte(`{"nope": 1}`), 0o644); err != nil {
			t.Fatal(err)
		}
		var w strings.Builder
		if _, err := Migrate(jsonBad, &w); err == nil || !strings.Contains(err.Error(), "bad.json:1,2: nope: unknown key") || w.Len() != 0 {
			t.Errorf("Migrate(unknown key) = %v, wrote %q; want the problem and nothing written", err, w.String())
		}
	}
}

// A Serf agent run with `-config-dir /etc/serf` kept its JSON files beside
// serfd's config.hcl: they are read after it and before config.d.
func TestLoadSerfJSONBesideMainConfig(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "node_name = \"from-hcl\"\ntags = { a = \"hcl\" }\n", map[string]string{"20.hcl": "tags = { c = \"dropin\" }\n"})
	dir := filepath.Dir(path)
	for name, body := range map[string]string{
		"serf.json":    `{"node_name": "from-json", "tags": {"a": "json", "b": "json"}}`,
		".hidden.json": `{"node_name": "hidden"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "from-json" || cfg.Tags["a"] != "json" || cfg.Tags["b"] != "json" || cfg.Tags["c"] != "dropin" {
		t.Errorf("node %q tags %v; want from-json, a=b=json, c=dropin", cfg.NodeName, cfg.Tags)
	}
	if want := []string{path, filepath.Join(dir, "serf.json"), filepath.Join(dir, "config.d", "20.hcl")}; !slices.Equal(cfg.Files, want) {
		t.Errorf("Files = %v; want %v", cfg.Files, want)
	}
}

// interface picks the interface's address with bind at 0.0.0.0 and
// otherwise checks that the interface has the bind address, as in Serf.
func TestLoadConfigInterface(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(writeConfig(t, "interface = \"lo\"\n", nil))
	if err != nil || cfg.BindAddr != "127.0.0.1" {
		t.Fatalf("interface lo: bind %v, %v; want 127.0.0.1", cfg, err)
	}
	for conf, want := range map[string]string{
		"bind = \"10.255.255.1\"\ninterface = \"lo\"\n": "config.hcl:2,1: interface \"lo\" does not have the bind address 10.255.255.1",
		"interface = \"no-such-if0\"\n":                 "config.hcl:1,1: interface \"no-such-if0\"",
	} {
		if _, err := LoadConfig(writeConfig(t, conf, nil)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig(%q) = %v; want %q", conf, err, want)
		}
	}
}

// wantAll fails the test for each of wants that got (named what) lacks.
func wantAll(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("%s lack %q:\n%s", what, want, got)
		}
	}
}
