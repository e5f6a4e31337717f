package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/serfd/serfd/ctl"
	"github.com/serfd/serfd/exec"
	"github.com/serfd/serfd/gossip"
)

// DefaultConfigPath is the main configuration file; config.d beside it holds drop-ins.
const DefaultConfigPath = "/etc/serf/config.hcl"

const defaultGossipPort = gossip.DefaultPort

// defaultAdminGroup is the group whose members may change things over the
// control socket; serfd.service runs as it.
const defaultAdminGroup = "serf"

// Config is the validated configuration of one serfd. Every duration is
// parsed once; every default is applied.
type Config struct {
	NodeName      string
	BindAddr      string
	BindPort      int
	AdvertiseAddr string
	AdvertisePort int
	Profile       string
	Tags          map[string]string
	// TagsFile keeps the tags across restarts (tagsfile.go); "" = none.
	TagsFile string
	Join     []string
	// JoinResolver is the DNS server ("ip:port") join names are resolved
	// through; "" = the system's resolver.
	JoinResolver string

	// Encryption: keys (first is primary) from encrypt_key or keyring_file.
	EncryptKeys [][]byte
	KeyringFile string

	DisableCoordinates bool

	// Discover is the mDNS cluster name ("" = no mDNS discovery), as
	// Serf's discover; MDNS* tune it.
	Discover                         string
	MDNSInterface                    string
	MDNSDisableIPv4, MDNSDisableIPv6 bool

	SnapshotPath     string
	RejoinAfterLeave bool
	ReplayOnJoin     bool

	ReconnectInterval time.Duration
	ReconnectTimeout  time.Duration
	TombstoneTimeout  time.Duration
	// KeyHandoverGrace: how long a removed key still lets its holder take
	// the keyring over (0 = never).
	KeyHandoverGrace time.Duration
	// SnapshotRetention: how long the snapshot keeps the address of a
	// member that failed or left, for the rejoin after a restart.
	SnapshotRetention time.Duration

	CoalescePeriod, QuiescentPeriod         time.Duration
	UserCoalescePeriod, UserQuiescentPeriod time.Duration

	UserEventSizeLimit     int
	QuerySizeLimit         int
	QueryResponseSizeLimit int
	// QueryResponseStreamSizeLimit bounds a query response larger than a
	// packet, sent or taken over a stream between serfd nodes; it is also
	// how much of a query handler's stdout is kept as its response.
	QueryResponseStreamSizeLimit int

	ControlSocket string
	// RPCAddr is where Serf's RPC protocol is served ("" = off); RPCAuth
	// the token clients must give, read from RPCAuthFile ("" = none).
	RPCAddr, RPCAuthFile, RPCAuth string
	// AdminGroup may use the mutating routes of the control API (root
	// always may). AdminGID is its gid, or -1 when the group does not
	// exist: then only root may.
	AdminGroup string
	AdminGID   int

	// MetricsAddr is where Prometheus metrics are served over TCP ("" =
	// only on the control socket); MetricsEventNames are the user event
	// names counted by name (the others count together).
	MetricsAddr       string
	MetricsEventNames []string

	HandlersDir     string
	HandlerWorkers  int
	HandlerQueue    int
	HandlerTimeout  time.Duration
	HandlerSettings map[string]exec.HandlerConfig
	// HandlerSpool keeps the runs of user events across restarts; ""
	// turns it off. Default: "runs" beside the snapshot, if there is one.
	HandlerSpool string

	LogLevel slog.Level

	// Files lists the files read, in the order they were applied.
	Files []string
	// Warnings are problems that do not stop serfd (a missing admin group).
	Warnings []string
}

// file schema: one HCL file. Pointers tell "unset" from "zero" so that
// drop-ins override only what they set.
type fileConfig struct {
	NodeName     *string           `hcl:"node_name,optional"`
	Bind         *string           `hcl:"bind,optional"`
	Advertise    *string           `hcl:"advertise,optional"`
	Profile      *string           `hcl:"profile,optional"`
	Tags         map[string]string `hcl:"tags,optional"`
	Join         []string          `hcl:"join,optional"`
	JoinResolver *string           `hcl:"join_resolver,optional"`
	Interface    *string           `hcl:"interface,optional"`
	Discover     *string           `hcl:"discover,optional"`

	EncryptKey       *string `hcl:"encrypt_key,optional"`
	KeyringFile      *string `hcl:"keyring_file,optional"`
	TagsFile         *string `hcl:"tags_file,optional"`
	SnapshotPath     *string `hcl:"snapshot_path,optional"`
	RejoinAfterLeave *bool   `hcl:"rejoin_after_leave,optional"`
	ReplayOnJoin     *bool   `hcl:"replay_on_join,optional"`
	DisableCoords    *bool   `hcl:"disable_coordinates,optional"`

	ReconnectInterval hcl.Expression `hcl:"reconnect_interval,optional"`
	KeyHandoverGrace  hcl.Expression `hcl:"key_handover_grace,optional"`
	ReconnectTimeout  hcl.Expression `hcl:"reconnect_timeout,optional"`
	TombstoneTimeout  hcl.Expression `hcl:"tombstone_timeout,optional"`
	SnapshotRetention hcl.Expression `hcl:"snapshot_retention,optional"`

	CoalescePeriod      hcl.Expression `hcl:"coalesce_period,optional"`
	QuiescentPeriod     hcl.Expression `hcl:"quiescent_period,optional"`
	UserCoalescePeriod  hcl.Expression `hcl:"user_coalesce_period,optional"`
	UserQuiescentPeriod hcl.Expression `hcl:"user_quiescent_period,optional"`

	UserEventSizeLimit           *int `hcl:"user_event_size_limit,optional"`
	QuerySizeLimit               *int `hcl:"query_size_limit,optional"`
	QueryResponseSizeLimit       *int `hcl:"query_response_size_limit,optional"`
	QueryResponseStreamSizeLimit *int `hcl:"query_response_stream_size_limit,optional"`

	MDNS     *mdnsBlock     `hcl:"mdns,block"`
	Control  *controlBlock  `hcl:"control,block"`
	RPC      *rpcBlock      `hcl:"rpc,block"`
	Metrics  *metricsBlock  `hcl:"metrics,block"`
	Handlers *handlersBlock `hcl:"handlers,block"`
	Handler  []handlerBlock `hcl:"handler,block"`
	Log      *logBlock      `hcl:"log,block"`
	Body     hcl.Body       `hcl:",body"`
}

type rpcBlock struct {
	Address  *string  `hcl:"address,optional"`
	AuthFile *string  `hcl:"auth_file,optional"`
	Body     hcl.Body `hcl:",body"`
	// auth is a token given in the file itself: Serf's rpc_auth, JSON
	// only (HCL takes it from auth_file).
	auth *string
}

type metricsBlock struct {
	Address    *string  `hcl:"address,optional"`
	EventNames []string `hcl:"event_names,optional"`
	Body       hcl.Body `hcl:",body"`
}

type mdnsBlock struct {
	Interface   *string  `hcl:"interface,optional"`
	DisableIPv4 *bool    `hcl:"disable_ipv4,optional"`
	DisableIPv6 *bool    `hcl:"disable_ipv6,optional"`
	Body        hcl.Body `hcl:",body"`
}

type controlBlock struct {
	Socket     *string  `hcl:"socket,optional"`
	AdminGroup *string  `hcl:"admin_group,optional"`
	Body       hcl.Body `hcl:",body"`
}

type handlersBlock struct {
	Dir     *string        `hcl:"dir,optional"`
	Workers *int           `hcl:"workers,optional"`
	Queue   *int           `hcl:"queue,optional"`
	Timeout hcl.Expression `hcl:"timeout,optional"`
	Spool   *string        `hcl:"spool,optional"`
	Body    hcl.Body       `hcl:",body"`
}

type handlerBlock struct {
	Name        string            `hcl:"name,label"`
	Events      []string          `hcl:"events,optional"`
	Tags        map[string]string `hcl:"tags,optional"`
	Timeout     hcl.Expression    `hcl:"timeout,optional"`
	Concurrency *int              `hcl:"concurrency,optional"`
	Env         map[string]string `hcl:"env,optional"`
	Command     *string           `hcl:"command,optional"`
	Body        hcl.Body          `hcl:",body"`
	DefRange    hcl.Range         `hcl:",def_range"`
}

type logBlock struct {
	Level *string  `hcl:"level,optional"`
	Body  hcl.Body `hcl:",body"`
}

// ConfigError carries every problem found in a configuration, each already
// formatted as "file:line,col: message".
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return strings.Join(e.Problems, "\n")
}

// LoadConfig reads path, then the *.json files beside it (a Serf agent's
// configuration directory, as Serf's -config-dir reads it), then every
// *.hcl and *.json file of config.d beside it, each in lexical order (a
// *.json file is a Serf agent's JSON configuration, config_json.go), and validates the result. On failure the error is a
// *ConfigError listing every problem at once.
func LoadConfig(path string) (*Config, error) {
	files := []string{path}
	l := loader{cfg: defaultConfig()}
	// Glob would skip a config.d it cannot read without a word.
	dir := filepath.Join(filepath.Dir(path), "config.d")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.problems = append(l.problems, fmt.Sprintf("cannot list drop-ins: %v", err))
	}
	// A directory others may write to lets them swap a trusted file for a
	// symlink to any file serfd can read.
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		l.problems = append(l.problems, fmt.Sprintf("%s: refused: group- or world-writable (mode %04o) (fix: chmod go-w %s)",
			dir, fi.Mode().Perm(), dir))
		entries = nil
	}
	var dropins []string
	for _, e := range entries {
		// Dotfiles (editor locks such as .#10-a.hcl, hidden copies) are
		// skipped, as in the handlers directory.
		if (strings.HasSuffix(e.Name(), ".hcl") || isJSONConfig(e.Name())) && !strings.HasPrefix(e.Name(), ".") {
			dropins = append(dropins, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(dropins)
	files = append(files, serfJSONBeside(path, &l)...)
	files = append(files, dropins...)

	parser := hclparse.NewParser()
	for _, f := range files {
		l.loadFile(parser, f)
	}
	l.finish()
	if len(l.problems) > 0 {
		return nil, &ConfigError{Problems: l.problems}
	}
	l.cfg.Files = files
	return l.cfg, nil
}

// defaultConfig is serfd's configuration before any file: the leaves'
// own defaults (gossip.DefaultConfig, exec.DefaultOptions) and what serfd
// sets as an agent (Serf's agent coalescing, systemd's state directory).
func defaultConfig() *Config {
	host, _ := os.Hostname()
	g, x := gossip.DefaultConfig(), exec.DefaultOptions()
	return &Config{
		NodeName:     host,
		BindAddr:     g.BindAddr,
		BindPort:     g.BindPort,
		Profile:      g.Profile,
		Tags:         map[string]string{},
		SnapshotPath: defaultSnapshotPath(),
		TagsFile:     defaultStateFile("tags.json"),

		ReconnectInterval: g.ReconnectInterval,
		ReconnectTimeout:  g.ReconnectTimeout,
		TombstoneTimeout:  g.TombstoneTimeout,
		KeyHandoverGrace:  g.KeyHandoverGrace,
		SnapshotRetention: g.SnapshotRetention,

		// Serf's agent coalesces member events and user events sent
		// with coalescing.
		CoalescePeriod:      3 * time.Second,
		QuiescentPeriod:     time.Second,
		UserCoalescePeriod:  3 * time.Second,
		UserQuiescentPeriod: time.Second,

		UserEventSizeLimit:           g.UserEventSizeLimit,
		QuerySizeLimit:               g.QuerySizeLimit,
		QueryResponseSizeLimit:       g.QueryResponseSizeLimit,
		QueryResponseStreamSizeLimit: g.QueryResponseStreamSizeLimit,

		ControlSocket:   ctl.DefaultSocket,
		AdminGroup:      defaultAdminGroup,
		HandlersDir:     "/etc/serf/handlers.d",
		HandlerWorkers:  x.Workers,
		HandlerQueue:    x.Queue,
		HandlerTimeout:  x.Timeout,
		HandlerSettings: map[string]exec.HandlerConfig{},
		LogLevel:        slog.LevelInfo,
	}
}

type loader struct {
	cfg      *Config
	problems []string
	// handlerFile remembers which file defined each handler block, to
	// report duplicates within one file.
	handlerFile map[string]string
	// spoolSet: a file set handlers.spool; otherwise it follows the
	// snapshot.
	spoolSet bool
	// serfRPC: a Serf JSON file was read, so Serf's RPC is served (at
	// its default address unless one was given), as a Serf agent does.
	serfRPC bool
	// lastSet is where settings checked together at the end were last
	// set, as "file:line,col".
	lastSet map[string]string
}

// setAt remembers that the setting name was set in body.
func (l *loader) setAt(name string, body hcl.Body) {
	if l.lastSet == nil {
		l.lastSet = map[string]string{}
	}
	r := attrRange(body, name)
	l.lastSet[name] = fmt.Sprintf("%s:%d,%d", r.Filename, r.Start.Line, r.Start.Column)
}

func (l *loader) diag(diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if d.Subject != nil {
			l.problems = append(l.problems, fmt.Sprintf("%s:%d,%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, msg))
		} else {
			l.problems = append(l.problems, msg)
		}
	}
}

// at reports a problem at the named attribute of body (or the body itself).
func (l *loader) at(body hcl.Body, attr, format string, args ...any) {
	r := attrRange(body, attr)
	l.problems = append(l.problems, fmt.Sprintf("%s:%d,%d: %s", r.Filename, r.Start.Line, r.Start.Column, fmt.Sprintf(format, args...)))
}

func attrRange(body hcl.Body, attr string) hcl.Range {
	if body == nil {
		return hcl.Range{Filename: "<config>"}
	}
	if b, ok := body.(*hclsyntax.Body); ok {
		if a, ok := b.Attributes[attr]; ok {
			return a.SrcRange
		}
		return b.SrcRange
	}
	return body.MissingItemRange()
}

// maxConfigFile bounds one configuration or keyring file.
const maxConfigFile = 1 << 20

func (l *loader) loadFile(parser *hclparse.Parser, path string) {
	if isJSONConfig(path) {
		l.loadJSON(path)
		return
	}
	src, err := readTrustedConfig(path)
	if err != nil {
		l.problems = append(l.problems, err.Error())
		return
	}
	f, diags := parser.ParseHCL(src, path)
	if diags.HasErrors() {
		l.diag(diags)
		return
	}
	// Decode errors (unknown keys, wrong types) do not stop the file: what
	// did decode is still validated, so every problem is reported at once.
	var fc fileConfig
	l.diag(gohcl.DecodeBody(f.Body, nil, &fc))
	l.apply(&fc, path)
}

func (l *loader) apply(fc *fileConfig, path string) {
	c := l.cfg
	if fc.NodeName != nil {
		if err := gossip.CheckNodeName(*fc.NodeName); err != nil {
			l.at(fc.Body, "node_name", "node_name: %v", err)
		}
		c.NodeName = *fc.NodeName
	}
	if fc.Bind != nil {
		ip, port, err := parseHostPort(*fc.Bind, defaultGossipPort)
		if err != nil {
			l.at(fc.Body, "bind", "bind %q: %v", *fc.Bind, err)
		}
		c.BindAddr, c.BindPort = ip, port
	}
	if fc.Advertise != nil {
		c.AdvertiseAddr, c.AdvertisePort = "", 0
		if *fc.Advertise != "" {
			ip, port, err := parseHostPort(*fc.Advertise, 0)
			if err != nil {
				l.at(fc.Body, "advertise", "advertise %q: %v", *fc.Advertise, err)
			}
			c.AdvertiseAddr, c.AdvertisePort = ip, port
		}
	}
	if fc.Profile != nil {
		switch *fc.Profile {
		case "lan", "wan", "local":
			c.Profile = *fc.Profile
		default:
			l.at(fc.Body, "profile", "profile %q is not one of lan, wan, local", *fc.Profile)
		}
	}
	for k, v := range fc.Tags {
		if k == "" {
			l.at(fc.Body, "tags", "tags: a tag name is empty")
		}
		c.Tags[k] = v
	}
	for _, j := range fc.Join {
		if err := checkJoinAddr(j); err != nil {
			l.at(fc.Body, "join", "%v", err)
		}
	}
	if fc.TagsFile != nil {
		if *fc.TagsFile != "" && !filepath.IsAbs(*fc.TagsFile) {
			l.at(fc.Body, "tags_file", "tags_file %q is not an absolute path", *fc.TagsFile)
		}
		c.TagsFile = *fc.TagsFile
	}
	c.Join = append(c.Join, fc.Join...)
	if fc.JoinResolver != nil {
		if err := checkResolverAddr(*fc.JoinResolver); err != nil {
			l.at(fc.Body, "join_resolver", "%v", err)
		}
		c.JoinResolver = *fc.JoinResolver
	}
	if fc.Interface != nil {
		l.applyInterface(fc)
	}
	l.applyDiscovery(fc)
	l.applyCluster(fc)
	if fc.Control != nil && fc.Control.Socket != nil {
		if !filepath.IsAbs(*fc.Control.Socket) {
			l.at(fc.Control.Body, "socket", "control socket %q is not an absolute path", *fc.Control.Socket)
		} else if len(*fc.Control.Socket) > 107 {
			l.at(fc.Control.Body, "socket", "control socket path is %d bytes; a Unix socket path holds at most 107", len(*fc.Control.Socket))
		}
		c.ControlSocket = *fc.Control.Socket
	}
	if r := fc.RPC; r != nil {
		if c.RPCAddr == "" {
			c.RPCAddr = defaultRPCAddr
		}
		if r.Address != nil {
			if err := checkRPCAddr(*r.Address); err != nil {
				l.at(r.Body, "address", "rpc address: %v", err)
			}
			c.RPCAddr = *r.Address
		}
		if r.AuthFile != nil {
			tok, err := readSecret(*r.AuthFile)
			if err != nil {
				l.at(r.Body, "auth_file", "rpc auth_file: %v", err)
			}
			c.RPCAuthFile, c.RPCAuth = *r.AuthFile, tok
		}
		if r.auth != nil {
			c.RPCAuthFile, c.RPCAuth = "", *r.auth
		}
	}
	l.applyMetrics(fc.Metrics)
	if fc.Control != nil && fc.Control.AdminGroup != nil {
		if *fc.Control.AdminGroup == "" {
			l.at(fc.Control.Body, "admin_group", "control admin_group is empty (name a group; root may always change things)")
		}
		c.AdminGroup = *fc.Control.AdminGroup
	}
	if h := fc.Handlers; h != nil {
		if h.Dir != nil {
			if !filepath.IsAbs(*h.Dir) {
				l.at(h.Body, "dir", "handlers dir %q is not an absolute path", *h.Dir)
			}
			c.HandlersDir = *h.Dir
		}
		if h.Workers != nil {
			if *h.Workers < 1 || *h.Workers > 1024 {
				l.at(h.Body, "workers", "handlers workers = %d is out of range 1..1024", *h.Workers)
			}
			c.HandlerWorkers = *h.Workers
		}
		if h.Queue != nil {
			if *h.Queue < 1 || *h.Queue > 1<<20 {
				l.at(h.Body, "queue", "handlers queue = %d is out of range 1..1048576", *h.Queue)
			}
			c.HandlerQueue = *h.Queue
		}
		if d, ok := l.duration(h.Body, "timeout", h.Timeout); ok {
			c.HandlerTimeout = d
		}
		if h.Spool != nil {
			if *h.Spool != "" && !filepath.IsAbs(*h.Spool) {
				l.at(h.Body, "spool", "handlers spool %q is not an absolute path", *h.Spool)
			}
			c.HandlerSpool, l.spoolSet = *h.Spool, true
		}
	}
	if l.handlerFile == nil {
		l.handlerFile = map[string]string{}
	}
	for _, hb := range fc.Handler {
		l.applyHandler(hb, path)
	}
	if fc.Log != nil && fc.Log.Level != nil {
		lvl, err := parseLevel(*fc.Log.Level)
		if err != nil {
			l.at(fc.Log.Body, "level", "log level: %v", err)
		}
		c.LogLevel = lvl
	}
}

// applyCluster applies the gossip settings: encryption, snapshot, reaping,
// coalescing and size limits.
func (l *loader) applyCluster(fc *fileConfig) {
	c := l.cfg
	if fc.EncryptKey != nil {
		c.EncryptKeys, c.KeyringFile = nil, ""
		if *fc.EncryptKey != "" {
			key, err := decodeKey(*fc.EncryptKey)
			if err != nil {
				l.at(fc.Body, "encrypt_key", "encrypt_key: %v", err)
			}
			c.EncryptKeys = [][]byte{key}
		}
	}
	if fc.KeyringFile != nil {
		if fc.EncryptKey != nil && *fc.EncryptKey != "" && *fc.KeyringFile != "" {
			l.at(fc.Body, "keyring_file", "encrypt_key and keyring_file are both set; use one (keyring_file holds every key, the first is primary)")
		}
		c.KeyringFile = *fc.KeyringFile
		c.EncryptKeys = nil
		if c.KeyringFile != "" {
			keys, err := readKeyring(c.KeyringFile)
			if err != nil {
				l.at(fc.Body, "keyring_file", "keyring_file: %v", err)
			}
			c.EncryptKeys = keys
		}
	}
	if fc.SnapshotPath != nil {
		if *fc.SnapshotPath != "" && !filepath.IsAbs(*fc.SnapshotPath) {
			l.at(fc.Body, "snapshot_path", "snapshot_path %q is not an absolute path", *fc.SnapshotPath)
		}
		c.SnapshotPath = *fc.SnapshotPath
	}
	if fc.RejoinAfterLeave != nil {
		c.RejoinAfterLeave = *fc.RejoinAfterLeave
	}
	if fc.ReplayOnJoin != nil {
		c.ReplayOnJoin = *fc.ReplayOnJoin
	}
	if fc.DisableCoords != nil {
		c.DisableCoordinates = *fc.DisableCoords
	}
	const month = 30 * 24 * time.Hour
	for _, d := range []struct {
		name   string
		expr   hcl.Expression
		dst    *time.Duration
		lo, hi time.Duration
	}{
		{"reconnect_interval", fc.ReconnectInterval, &c.ReconnectInterval, time.Second, 24 * time.Hour},
		{"reconnect_timeout", fc.ReconnectTimeout, &c.ReconnectTimeout, time.Second, month},
		{"tombstone_timeout", fc.TombstoneTimeout, &c.TombstoneTimeout, time.Second, month},
		{"key_handover_grace", fc.KeyHandoverGrace, &c.KeyHandoverGrace, 0, month},
		{"snapshot_retention", fc.SnapshotRetention, &c.SnapshotRetention, time.Minute, 365 * 24 * time.Hour},
		{"coalesce_period", fc.CoalescePeriod, &c.CoalescePeriod, 0, time.Minute},
		{"quiescent_period", fc.QuiescentPeriod, &c.QuiescentPeriod, 0, time.Minute},
		{"user_coalesce_period", fc.UserCoalescePeriod, &c.UserCoalescePeriod, 0, time.Minute},
		{"user_quiescent_period", fc.UserQuiescentPeriod, &c.UserQuiescentPeriod, 0, time.Minute},
	} {
		if v, ok := l.durationIn(fc.Body, d.name, d.expr, d.lo, d.hi); ok {
			*d.dst = v
			l.setAt(d.name, fc.Body)
		}
	}
	for _, n := range []struct {
		name   string
		v      *int
		dst    *int
		lo, hi int
	}{
		{"user_event_size_limit", fc.UserEventSizeLimit, &c.UserEventSizeLimit, 64, gossip.MaxMessageSizeLimit},
		{"query_size_limit", fc.QuerySizeLimit, &c.QuerySizeLimit, 128, gossip.MaxMessageSizeLimit},
		{"query_response_size_limit", fc.QueryResponseSizeLimit, &c.QueryResponseSizeLimit, 128, gossip.MaxMessageSizeLimit},
		{"query_response_stream_size_limit", fc.QueryResponseStreamSizeLimit, &c.QueryResponseStreamSizeLimit, 128, gossip.MaxQueryResponseStreamSizeLimit},
	} {
		if n.v == nil {
			continue
		}
		if *n.v < n.lo || *n.v > n.hi {
			l.at(fc.Body, n.name, "%s = %d is out of range %d..%d", n.name, *n.v, n.lo, n.hi)
		}
		*n.dst = *n.v
		l.setAt(n.name, fc.Body)
	}
}

func (l *loader) applyHandler(hb handlerBlock, path string) {
	r := hb.DefRange
	if prev, ok := l.handlerFile[hb.Name]; ok && prev == path {
		l.problems = append(l.problems, fmt.Sprintf("%s:%d,%d: handler %q is defined twice in this file", r.Filename, r.Start.Line, r.Start.Column, hb.Name))
		return
	}
	l.handlerFile[hb.Name] = path
	if hb.Name == "" || strings.ContainsRune(hb.Name, '/') {
		l.problems = append(l.problems, fmt.Sprintf("%s:%d,%d: handler %q is not a file name", r.Filename, r.Start.Line, r.Start.Column, hb.Name))
	}
	hc := exec.HandlerConfig{Events: hb.Events, Env: hb.Env}
	if hb.Command != nil {
		if strings.TrimSpace(*hb.Command) == "" || strings.ContainsRune(*hb.Command, 0) {
			l.at(hb.Body, "command", "handler %q: command is empty or holds a NUL byte", hb.Name)
		}
		hc.Command = *hb.Command
	}
	for _, ev := range hb.Events {
		if err := exec.ValidateFilter(ev); err != nil {
			l.at(hb.Body, "events", "handler %q: %v", hb.Name, err)
		}
	}
	// One problem per tag, each with its place.
	for _, k := range slices.Sorted(maps.Keys(hb.Tags)) {
		if _, err := compileHandlerTags(map[string]string{k: hb.Tags[k]}); err != nil {
			l.at(hb.Body, "tags", "handler %q: %v", hb.Name, err)
		}
	}
	if len(hb.Tags) > 0 {
		hc.Tags = hb.Tags
	}
	for k := range hb.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			l.at(hb.Body, "env", "handler %q: %q is not an environment variable name", hb.Name, k)
		}
	}
	if d, ok := l.duration(hb.Body, "timeout", hb.Timeout); ok {
		hc.Timeout = d
	}
	if hb.Concurrency != nil {
		if *hb.Concurrency < 1 || *hb.Concurrency > 1024 {
			l.at(hb.Body, "concurrency", "handler %q: concurrency = %d is out of range 1..1024", hb.Name, *hb.Concurrency)
		}
		hc.Concurrency = *hb.Concurrency
	}
	// A later file's block for the same handler replaces the earlier one whole.
	l.cfg.HandlerSettings[hb.Name] = hc
}

// duration evaluates an optional duration attribute written as a Go
// duration string ("90s", "5m"). ok is false when it is absent or invalid.
func (l *loader) duration(body hcl.Body, name string, expr hcl.Expression) (time.Duration, bool) {
	return l.durationIn(body, name, expr, time.Nanosecond, 24*time.Hour)
}

// durationIn is duration with an inclusive range [lo, hi].
func (l *loader) durationIn(body hcl.Body, name string, expr hcl.Expression, lo, hi time.Duration) (time.Duration, bool) {
	if expr == nil {
		return 0, false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		l.diag(diags)
		return 0, false
	}
	if v.IsNull() {
		return 0, false
	}
	if v.Type() != cty.String || !v.IsKnown() {
		l.at(body, name, "%s must be a duration string such as \"30s\"", name)
		return 0, false
	}
	d, err := time.ParseDuration(v.AsString())
	if err != nil {
		l.at(body, name, "%s %q is not a duration (use a number with a unit: \"500ms\", \"30s\", \"5m\")", name, v.AsString())
		return 0, false
	}
	if d < lo || d > hi {
		l.at(body, name, "%s %q is out of range %s..%s", name, v.AsString(), lo, hi)
		return 0, false
	}
	return d, true
}

func (l *loader) finish() {
	c := l.cfg
	// A zero coalesce period turns coalescing off; its quiescent period
	// then means nothing.
	for _, p := range []struct {
		name, quietName string
		period, quiet   *time.Duration
	}{
		{"coalesce_period", "quiescent_period", &c.CoalescePeriod, &c.QuiescentPeriod},
		{"user_coalesce_period", "user_quiescent_period", &c.UserCoalescePeriod, &c.UserQuiescentPeriod},
	} {
		if *p.period == 0 {
			*p.quiet = 0
		} else if *p.quiet == 0 {
			where := l.lastSet[p.quietName] // the 0s was set there (the default is not 0)
			l.problems = append(l.problems, fmt.Sprintf("%s: %s is %s but %s is 0s; set both, or %s = \"0s\" to turn coalescing off",
				where, p.name, *p.period, p.quietName, p.name))
		}
	}
	// The stream limit starts where a packet's ends (equal: no answer
	// travels by stream).
	if c.QueryResponseStreamSizeLimit < c.QueryResponseSizeLimit {
		where := l.lastSet["query_response_stream_size_limit"]
		if where == "" {
			where = l.lastSet["query_response_size_limit"]
		}
		l.problems = append(l.problems, fmt.Sprintf("%s: query_response_stream_size_limit = %d is below query_response_size_limit = %d; set it at least as large",
			where, c.QueryResponseStreamSizeLimit, c.QueryResponseSizeLimit))
	}
	if l.serfRPC && c.RPCAddr == "" {
		c.RPCAddr = defaultRPCAddr
	}
	if c.NodeName == "" {
		l.problems = append(l.problems, "node_name is not set and the hostname is unknown")
	}
	if !l.spoolSet && c.SnapshotPath != "" {
		c.HandlerSpool = filepath.Join(filepath.Dir(c.SnapshotPath), "runs")
	}
	c.AdminGID = -1
	if c.AdminGroup != "" {
		if g, err := user.LookupGroup(c.AdminGroup); err != nil {
			c.Warnings = append(c.Warnings, fmt.Sprintf("control admin_group %q: %v; only root may change things over the control socket", c.AdminGroup, err))
		} else if gid, err := strconv.Atoi(g.Gid); err == nil {
			c.AdminGID = gid
		}
	}
}
