package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// A Serf agent's JSON configuration (Serf 0.10's keys) is read into the
// same fileConfig as an HCL file, so that it is validated and applied by
// the same rules and every problem names file:line,col of the JSON key.
// Keys that serfd does not need, or does differently on purpose, are
// accepted with a warning that says why; a key Serf does not know is an
// error, as it is for Serf.

// jsonKey is one top-level key of a JSON configuration.
type jsonKey struct {
	name string
	raw  json.RawMessage
	rng  hcl.Range
}

// serfJSON is a Serf JSON configuration read into serfd's terms.
type serfJSON struct {
	fc *fileConfig
	// notes are what serfd does differently for a key, each prefixed
	// with file:line,col (warnings when loaded, comments in migrate).
	notes []string
	// problems are keys that cannot be used (wrong type, unknown key).
	problems []string
	// rpcAuth: the file gave rpc_auth (a token in the file itself).
	rpcAuth bool
}

// parseSerfJSON reads src, a Serf agent's JSON configuration named path.
// names are the handler names already taken (by earlier files); the
// handlers made for event_handlers get names not in it.
func parseSerfJSON(path string, src []byte, taken func(string) bool) *serfJSON {
	s := &serfJSON{fc: &fileConfig{}}
	keys, err := readJSONKeys(path, src)
	if err != nil {
		s.problems = append(s.problems, err.Error())
		return s
	}
	fc := s.fc
	attrs := hclsyntax.Attributes{}
	body := &hclsyntax.Body{Attributes: attrs, SrcRange: hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos}}
	fc.Body = body
	// at gives the HCL setting name the JSON key's place, for the
	// messages of the shared rules.
	at := func(hclName string, k jsonKey) {
		if _, ok := attrs[hclName]; !ok {
			attrs[hclName] = &hclsyntax.Attribute{Name: hclName, SrcRange: k.rng, NameRange: k.rng}
		}
	}
	keyBody := func(hclName string, k jsonKey) *hclsyntax.Body {
		return &hclsyntax.Body{SrcRange: k.rng, Attributes: hclsyntax.Attributes{
			hclName: {Name: hclName, SrcRange: k.rng, NameRange: k.rng},
		}}
	}
	seen := map[string]bool{}
	for _, k := range keys {
		where := fmt.Sprintf("%s:%d,%d", path, k.rng.Start.Line, k.rng.Start.Column)
		name := k.name
		if !isKeyName(name) {
			name = strconv.Quote(name)
		}
		bad := func(format string, args ...any) {
			s.problems = append(s.problems, where+": "+name+": "+fmt.Sprintf(format, args...))
		}
		note := func(format string, args ...any) {
			s.notes = append(s.notes, where+": "+name+": "+fmt.Sprintf(format, args...))
		}
		if seen[k.name] {
			bad("set twice in this file")
			continue
		}
		seen[k.name] = true
		var err error
		switch k.name {
		case "node_name", "bind", "advertise", "interface", "profile", "encrypt_key", "keyring_file",
			"tags_file", "snapshot_path", "discover":
			var v string
			if v, err = jsonString(k.raw); err == nil {
				at(k.name, k)
				*map[string]**string{
					"node_name": &fc.NodeName, "bind": &fc.Bind, "advertise": &fc.Advertise,
					"interface": &fc.Interface, "profile": &fc.Profile, "encrypt_key": &fc.EncryptKey,
					"keyring_file": &fc.KeyringFile, "tags_file": &fc.TagsFile,
					"snapshot_path": &fc.SnapshotPath, "discover": &fc.Discover,
				}[k.name] = &v
			}
		case "role":
			var v string
			if v, err = jsonString(k.raw); err == nil && v != "" {
				at("tags", k)
				if fc.Tags == nil {
					fc.Tags = map[string]string{}
				}
				if _, set := fc.Tags["role"]; !set {
					fc.Tags["role"] = v
				}
				note("deprecated in Serf; applied as tags.role")
			}
		case "tags":
			var v map[string]string
			if err = json.Unmarshal(k.raw, &v); err != nil {
				err = errors.New("want an object of strings")
				break
			}
			at("tags", k)
			if fc.Tags == nil {
				fc.Tags = map[string]string{}
			}
			for tk, tv := range v {
				fc.Tags[tk] = tv
			}
		case "start_join", "retry_join":
			var v []string
			if v, err = jsonStrings(k.raw); err == nil {
				at("join", k)
				fc.Join = append(fc.Join, v...)
				if k.name == "start_join" && len(v) > 0 {
					note("joined in the background and retried like retry_join: serfd starts even when no address answers yet (Serf exits)")
				}
			}
		case "event_handlers":
			var v []string
			if v, err = jsonStrings(k.raw); err == nil {
				fc.Handler = append(fc.Handler, eventHandlers(v, k.rng, taken)...)
			}
		case "log_level":
			var v string
			if v, err = jsonString(k.raw); err == nil {
				fc.Log = &logBlock{Level: &v, Body: keyBody("level", k)}
			}
		case "rpc_addr":
			var v string
			if v, err = jsonString(k.raw); err == nil && v != "" {
				if fc.RPC == nil {
					fc.RPC = &rpcBlock{Body: keyBody("address", k)}
				}
				fc.RPC.Address = &v
			}
		case "rpc_auth":
			var v string
			if v, err = jsonString(k.raw); err == nil && v != "" {
				if fc.RPC == nil {
					fc.RPC = &rpcBlock{Body: keyBody("auth_file", k)}
				}
				fc.RPC.auth = &v
				s.rpcAuth = true
			}
		case "replay_on_join", "rejoin_after_leave", "disable_coordinates":
			var v bool
			if v, err = jsonBool(k.raw); err == nil {
				at(k.name, k)
				*map[string]**bool{
					"replay_on_join": &fc.ReplayOnJoin, "rejoin_after_leave": &fc.RejoinAfterLeave,
					"disable_coordinates": &fc.DisableCoords,
				}[k.name] = &v
			}
		case "query_response_size_limit", "query_size_limit", "user_event_size_limit":
			var v int
			if v, err = jsonInt(k.raw); err == nil {
				at(k.name, k)
				*map[string]**int{
					"query_response_size_limit": &fc.QueryResponseSizeLimit, "query_size_limit": &fc.QuerySizeLimit,
					"user_event_size_limit": &fc.UserEventSizeLimit,
				}[k.name] = &v
			}
		case "reconnect_interval", "reconnect_timeout", "tombstone_timeout":
			var v string
			if v, err = jsonString(k.raw); err == nil {
				at(k.name, k)
				expr := hcl.StaticExpr(cty.StringVal(v), k.rng)
				*map[string]*hcl.Expression{
					"reconnect_interval": &fc.ReconnectInterval, "reconnect_timeout": &fc.ReconnectTimeout,
					"tombstone_timeout": &fc.TombstoneTimeout,
				}[k.name] = expr
			}
		case "mdns":
			var v struct {
				Interface   *string `json:"interface"`
				DisableIPv4 *bool   `json:"disable_ipv4"`
				DisableIPv6 *bool   `json:"disable_ipv6"`
			}
			dec := json.NewDecoder(bytes.NewReader(k.raw))
			dec.DisallowUnknownFields()
			if err = dec.Decode(&v); err != nil {
				err = fmt.Errorf("want an object with interface, disable_ipv4, disable_ipv6: %v", err)
				break
			}
			mb := keyBody("interface", k)
			mb.Attributes["disable_ipv6"] = mb.Attributes["interface"]
			fc.MDNS = &mdnsBlock{Interface: v.Interface, DisableIPv4: v.DisableIPv4, DisableIPv6: v.DisableIPv6, Body: mb}
		case "protocol":
			var v int
			if v, err = jsonInt(k.raw); err == nil {
				switch {
				case v < 2 || v > 5:
					bad("%d is out of range 2..5", v)
				case v != 5:
					note("ignored: serfd speaks Serf protocol 5 and understands 2..5, so it works beside agents that speak %d", v)
				}
			}
		default:
			if why, ok := serfOnlyKeys[k.name]; ok {
				err = s.serfOnly(k, why, note)
				break
			}
			err = fmt.Errorf("unknown key (not a setting of a Serf 0.10 agent; serfd's own settings are written in HCL)")
		}
		if err != nil {
			bad("%v", err)
		}
	}
	return s
}

// serfOnlyKeys are Serf's settings that serfd accepts without using them,
// with why. A note is given only when the file asks for something serfd
// does not do (see serfOnly).
var serfOnlyKeys = map[string]string{
	"leave_on_terminate":      "serfd always leaves gracefully when stopped (systemctl stop, SIGTERM); kill -9 leaves it failed",
	"skip_leave_on_interrupt": "serfd leaves gracefully on SIGINT as on SIGTERM",
	"retry_interval":          "serfd retries joins with a backoff from 1s to 30s",
	"retry_max_attempts":      "serfd keeps retrying joins for as long as it runs (a member from boot to shutdown)",
	"broadcast_timeout":       "a leave waits at most 5s for this node's unsent events, then leaves",
	"enable_compression":      "gossip is always compressed (as it was in Serf, where this key had no effect)",
	"disable_name_resolution": "serfd resolves name conflicts as Serf does by default",
	"validate_node_names":     "serfd always checks node names (at most 128 bytes, printable, no spaces)",
	"enable_syslog":           "serfd logs to the journal; to get its records in syslog, set ForwardToSyslog=yes in journald.conf",
	"syslog_facility":         "serfd logs to the journal; to get its records in syslog, set ForwardToSyslog=yes in journald.conf",
	"statsite_addr":           "not supported: serfd does not send statsite/statsd metrics",
	"statsd_addr":             "not supported: serfd does not send statsite/statsd metrics",
}

// serfOnly checks a key of serfOnlyKeys and notes why it is not used when
// the file sets it to something other than what serfd does anyway.
func (s *serfJSON) serfOnly(k jsonKey, why string, note func(string, ...any)) error {
	switch k.name {
	case "leave_on_terminate", "skip_leave_on_interrupt", "enable_compression", "disable_name_resolution",
		"validate_node_names", "enable_syslog":
		v, err := jsonBool(k.raw)
		if err != nil {
			return err
		}
		// The value serfd's behaviour already matches.
		same := map[string]bool{"leave_on_terminate": true, "enable_compression": true, "validate_node_names": v}[k.name]
		if v != same {
			note("%s", why)
		}
	case "retry_max_attempts":
		v, err := jsonInt(k.raw)
		if err != nil {
			return err
		}
		if v != 0 {
			note("%s", why)
		}
	default: // strings: durations, addresses, facility
		v, err := jsonString(k.raw)
		if err != nil {
			return err
		}
		if v != "" {
			note("%s", why)
		}
	}
	return nil
}

// eventHandlers turns Serf's event_handlers ("[filter=]command") into
// handler blocks that run the command as Serf does, with /bin/sh -c. A
// handler is named after its command's program (deploy.sh), made unique.
func eventHandlers(specs []string, rng hcl.Range, taken func(string) bool) []handlerBlock {
	var out []handlerBlock
	used := map[string]bool{}
	for _, spec := range specs {
		filter, command := "*", spec
		// Serf splits at the first '=': a command holding one needs a filter.
		if i := strings.IndexByte(spec, '='); i >= 0 {
			filter, command = spec[:i], spec[i+1:]
		}
		name := uniqueName(commandName(command), func(n string) bool { return used[n] || taken(n) })
		used[name] = true
		body := &hclsyntax.Body{SrcRange: rng, Attributes: hclsyntax.Attributes{
			"events":  {Name: "events", SrcRange: rng, NameRange: rng},
			"command": {Name: "command", SrcRange: rng, NameRange: rng},
		}}
		c := command
		out = append(out, handlerBlock{Name: name, Events: []string{filter}, Command: &c, Body: body, DefRange: rng})
	}
	return out
}

// commandName is a handler name for a command: its program's base name,
// with anything but letters, digits, '.', '_' and '-' made '-'.
func commandName(command string) string {
	f := strings.Fields(command)
	if len(f) == 0 {
		return "handler"
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, filepath.Base(f[0]))
	if name == "" || name == "." || name == ".." || len(name) > 64 {
		return "handler"
	}
	return name
}

// uniqueName is name, or name-2, name-3... the first that is not taken.
func uniqueName(name string, taken func(string) bool) string {
	if !taken(name) {
		return name
	}
	for i := 2; ; i++ {
		if n := fmt.Sprintf("%s-%d", name, i); !taken(n) {
			return n
		}
	}
}

// readJSONKeys reads the top-level object of a JSON file, keeping each
// key's place.
func readJSONKeys(path string, src []byte) ([]jsonKey, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	fail := func(err error) ([]jsonKey, error) {
		off := dec.InputOffset()
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = se.Offset
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("unexpected end of file")
		}
		p := posAt(src, int(off))
		return nil, fmt.Errorf("%s:%d,%d: not valid JSON: %v", path, p.Line, p.Column, err)
	}
	tok, err := dec.Token()
	if err != nil {
		return fail(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%s:1,1: a Serf JSON configuration is one object ({...})", path)
	}
	var keys []jsonKey
	for dec.More() {
		start := skipSpace(src, int(dec.InputOffset()))
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail(err)
		}
		p := posAt(src, start)
		keys = append(keys, jsonKey{name: name, raw: raw, rng: hcl.Range{Filename: path, Start: p, End: p}})
	}
	if _, err := dec.Token(); err != nil {
		return fail(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		p := posAt(src, skipSpace(src, int(dec.InputOffset())))
		return nil, fmt.Errorf("%s:%d,%d: text after the configuration object", path, p.Line, p.Column)
	}
	return keys, nil
}

// skipSpace skips JSON white space and the comma between members.
func skipSpace(src []byte, i int) int {
	for i < len(src) && strings.IndexByte(" \t\r\n,", src[i]) >= 0 {
		i++
	}
	return i
}

// posAt is the line and column (both from 1) of byte offset off.
func posAt(src []byte, off int) hcl.Pos {
	off = min(max(off, 0), len(src))
	line := 1 + bytes.Count(src[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(src[:off], '\n')
	return hcl.Pos{Line: line, Column: col, Byte: off}
}

func jsonString(raw json.RawMessage) (string, error) {
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", errors.New("want a string")
	}
	return v, nil
}

func jsonStrings(raw json.RawMessage) ([]string, error) {
	var v []string
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errors.New("want a list of strings")
	}
	return v, nil
}

func jsonBool(raw json.RawMessage) (bool, error) {
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, errors.New("want true or false")
	}
	return v, nil
}

func jsonInt(raw json.RawMessage) (int, error) {
	var v int
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, errors.New("want a whole number")
	}
	return v, nil
}

// loadJSON reads a Serf JSON configuration file into the loader.
func (l *loader) loadJSON(path string) {
	src, err := readTrustedConfig(path)
	if err != nil {
		l.problems = append(l.problems, err.Error())
		return
	}
	s := parseSerfJSON(path, src, func(name string) bool { _, ok := l.handlerFile[name]; return ok })
	l.problems = append(l.problems, s.problems...)
	l.cfg.Warnings = append(l.cfg.Warnings, s.notes...)
	if s.rpcAuth {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			l.cfg.Warnings = append(l.cfg.Warnings, fmt.Sprintf("%s: rpc_auth: the token is readable by other users of this host (mode %04o) (fix: chmod 0600 %s, or move it to an rpc auth_file)",
				path, fi.Mode().Perm(), path))
		}
	}
	// Serf serves its RPC always; a node moved from Serf keeps serving it.
	l.serfRPC = true
	l.apply(s.fc, path)
}

// serfJSONBeside lists the *.json files in the directory of the main
// configuration file, main itself excepted: a Serf agent started with
// `-config-dir /etc/serf` kept its configuration there, and serfd reads
// it where it is. Dotfiles are skipped.
func serfJSONBeside(main string, l *loader) []string {
	dir := filepath.Dir(main)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.problems = append(l.problems, fmt.Sprintf("cannot list %s for Serf JSON files: %v", dir, err))
		}
		return nil
	}
	var out []string
	for _, e := range entries { // sorted by name
		p := filepath.Join(dir, e.Name())
		if isJSONConfig(e.Name()) && !strings.HasPrefix(e.Name(), ".") && p != filepath.Clean(main) {
			out = append(out, p)
		}
	}
	return out
}

// isKeyName: name is printed bare in messages (lower-case letters, digits
// and '_', as every Serf key); any other is quoted.
func isKeyName(name string) bool {
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return name != ""
}

// isJSONConfig says whether a configuration file is Serf's JSON.
func isJSONConfig(path string) bool { return strings.HasSuffix(path, ".json") }
