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
			if set, ok := scalarKeys[k.name]; ok {
				if err = set(fc, k); err == nil {
					at(k.name, k)
				}
			} else if u, ok := unusedKeys[k.name]; ok {
				err = u.check(k, note)
			} else {
				err = fmt.Errorf("unknown key (not a setting of a Serf 0.10 agent; serfd's own settings are written in HCL)")
			}
		}
		if err != nil {
			bad("%v", err)
		}
	}
	return s
}

// scalarKey names a setting Serf's JSON and serfd's HCL share, with its
// field in fileConfig; scalarKeys are all of them. migrate writes them in
// this order.
type scalarKey struct {
	name string
	// one of these is set
	str  func(*fileConfig) **string
	flag func(*fileConfig) **bool
	num  func(*fileConfig) **int
	dur  func(*fileConfig) *hcl.Expression
}

var scalarKeyList = []scalarKey{
	{name: "node_name", str: func(f *fileConfig) **string { return &f.NodeName }},
	{name: "bind", str: func(f *fileConfig) **string { return &f.Bind }},
	{name: "advertise", str: func(f *fileConfig) **string { return &f.Advertise }},
	{name: "interface", str: func(f *fileConfig) **string { return &f.Interface }},
	{name: "profile", str: func(f *fileConfig) **string { return &f.Profile }},
	{name: "tags_file", str: func(f *fileConfig) **string { return &f.TagsFile }},
	{name: "discover", str: func(f *fileConfig) **string { return &f.Discover }},
	{name: "encrypt_key", str: func(f *fileConfig) **string { return &f.EncryptKey }},
	{name: "keyring_file", str: func(f *fileConfig) **string { return &f.KeyringFile }},
	{name: "snapshot_path", str: func(f *fileConfig) **string { return &f.SnapshotPath }},
	{name: "replay_on_join", flag: func(f *fileConfig) **bool { return &f.ReplayOnJoin }},
	{name: "rejoin_after_leave", flag: func(f *fileConfig) **bool { return &f.RejoinAfterLeave }},
	{name: "disable_coordinates", flag: func(f *fileConfig) **bool { return &f.DisableCoords }},
	{name: "reconnect_interval", dur: func(f *fileConfig) *hcl.Expression { return &f.ReconnectInterval }},
	{name: "reconnect_timeout", dur: func(f *fileConfig) *hcl.Expression { return &f.ReconnectTimeout }},
	{name: "tombstone_timeout", dur: func(f *fileConfig) *hcl.Expression { return &f.TombstoneTimeout }},
	{name: "user_event_size_limit", num: func(f *fileConfig) **int { return &f.UserEventSizeLimit }},
	{name: "query_size_limit", num: func(f *fileConfig) **int { return &f.QuerySizeLimit }},
	{name: "query_response_size_limit", num: func(f *fileConfig) **int { return &f.QueryResponseSizeLimit }},
}

// scalarKeys sets a shared setting from its JSON value, by name.
var scalarKeys = func() map[string]func(*fileConfig, jsonKey) error {
	m := map[string]func(*fileConfig, jsonKey) error{}
	for _, sk := range scalarKeyList {
		m[sk.name] = func(fc *fileConfig, k jsonKey) error {
			switch {
			case sk.str != nil:
				return decodeInto(k.raw, jsonString, sk.str(fc))
			case sk.flag != nil:
				return decodeInto(k.raw, jsonBool, sk.flag(fc))
			case sk.num != nil:
				return decodeInto(k.raw, jsonInt, sk.num(fc))
			}
			v, err := jsonString(k.raw)
			if err == nil {
				*sk.dur(fc) = hcl.StaticExpr(cty.StringVal(v), k.rng)
			}
			return err
		}
	}
	return m
}()

// decodeInto decodes raw with decode and, if it is valid, sets *dst.
func decodeInto[T any](raw json.RawMessage, decode func(json.RawMessage) (T, error), dst **T) error {
	v, err := decode(raw)
	if err == nil {
		*dst = &v
	}
	return err
}

// value is the setting's value in fc as a cty value, for migrate; ok is
// false when fc does not set it.
func (sk scalarKey) value(fc *fileConfig) (cty.Value, bool) {
	switch {
	case sk.str != nil && *sk.str(fc) != nil:
		return cty.StringVal(**sk.str(fc)), true
	case sk.flag != nil && *sk.flag(fc) != nil:
		return cty.BoolVal(**sk.flag(fc)), true
	case sk.num != nil && *sk.num(fc) != nil:
		return cty.NumberIntVal(int64(**sk.num(fc))), true
	case sk.dur != nil && *sk.dur(fc) != nil:
		if v, diags := (*sk.dur(fc)).Value(nil); !diags.HasErrors() {
			return v, true
		}
	}
	return cty.NilVal, false
}

// unusedKey is a Serf setting serfd accepts without using it: why, and
// the value with which the file asks for what serfd does anyway (no
// note then). The type of quiet is the key's: bool, int or string.
type unusedKey struct {
	why   string
	quiet any
	// always: no note whatever the value (Serf's agent ignored it too)
	always bool
}

const journalNotSyslog = "serfd logs to the journal; to get its records in syslog, set ForwardToSyslog=yes in journald.conf"

var unusedKeys = map[string]unusedKey{
	"leave_on_terminate":      {why: "serfd always leaves gracefully when stopped (systemctl stop, SIGTERM); kill -9 leaves it failed", quiet: true},
	"skip_leave_on_interrupt": {why: "serfd leaves gracefully on SIGINT as on SIGTERM", quiet: false},
	"retry_interval":          {why: "serfd retries joins with a backoff from 1s to 30s", quiet: ""},
	"retry_max_attempts":      {why: "serfd keeps retrying joins for as long as it runs (a member from boot to shutdown)", quiet: 0},
	"broadcast_timeout":       {why: "a leave waits at most 5s for this node's unsent events, then leaves", quiet: ""},
	"enable_compression":      {why: "gossip is always compressed (as it was in Serf, where this key had no effect)", quiet: true},
	"disable_name_resolution": {why: "serfd resolves name conflicts as Serf does by default", quiet: false},
	"validate_node_names":     {why: "serfd always checks node names (at most 128 bytes, printable, no spaces)", quiet: false, always: true},
	"enable_syslog":           {why: journalNotSyslog, quiet: false},
	"syslog_facility":         {why: journalNotSyslog, quiet: ""},
	"statsite_addr":           {why: "not supported: serfd does not send statsite/statsd metrics", quiet: ""},
	"statsd_addr":             {why: "not supported: serfd does not send statsite/statsd metrics", quiet: ""},
}

// check decodes the key's value and notes why it is not used when the
// file asks for something serfd does not do.
func (u unusedKey) check(k jsonKey, note func(string, ...any)) error {
	var got any
	var err error
	switch u.quiet.(type) {
	case bool:
		got, err = jsonBool(k.raw)
	case int:
		got, err = jsonInt(k.raw)
	default:
		got, err = jsonString(k.raw)
	}
	if err == nil && !u.always && got != u.quiet {
		note("%s", u.why)
	}
	return err
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
