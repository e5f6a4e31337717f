package exec

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// envVar is one environment variable of a script.
type envVar struct {
	key, value string
}

// prepared is what every run of one event shares, computed once at Submit
// so that the pool keeps no reference to the caller's maps and slices.
type prepared struct {
	typ       string
	desc      string // for messages: describeEvent
	userEvent string // set for user events
	queryName string // set for queries
	ltime     uint64
	env       []envVar // Serf's SERF_* variables
	stdin     []byte
	respond   func([]byte) error // queries only
}

// prepare builds the env/stdin contract for ev.
func prepare(ev *Event) *prepared {
	p := &prepared{typ: ev.Type, ltime: ev.LTime, env: contractEnv(ev),
		desc: describeEvent(ev.Type, ev.UserEvent, ev.QueryName, ev.Members)}
	switch ev.Type {
	case "user":
		p.userEvent = ev.UserEvent
		p.stdin = payloadStdin(ev.Payload)
	case "query":
		p.queryName = ev.QueryName
		p.stdin = payloadStdin(ev.Payload)
		p.respond = ev.Respond
	default:
		p.stdin = memberStdin(ev.Members)
	}
	return p
}

// logAttrs are the attributes that identify the event in a run's records.
func (p *prepared) logAttrs() []any {
	attrs := []any{"SERF_EVENT", p.typ}
	switch p.typ {
	case "user":
		attrs = append(attrs, "SERF_USER_EVENT", p.userEvent, "SERF_LTIME", p.ltime)
	case "query":
		attrs = append(attrs, "SERF_QUERY_NAME", p.queryName, "SERF_LTIME", p.ltime)
	}
	return attrs
}

// contractEnv is Serf's handler environment for ev: SERF_EVENT,
// SERF_SELF_NAME, SERF_SELF_ROLE, one SERF_TAG_<NAME> per self tag (in tag
// order, so of two tags that mangle to one name the later wins), and the
// user event or query name and Lamport time; then serfd's extras
// SERF_SELF_ADDR and, for queries, SERF_QUERY_SOURCE.
func contractEnv(ev *Event) []envVar {
	env := []envVar{
		{"SERF_EVENT", ev.Type},
		{"SERF_SELF_NAME", ev.SelfName},
		{"SERF_SELF_ROLE", ev.SelfTags["role"]},
	}
	for _, k := range slices.Sorted(maps.Keys(ev.SelfTags)) {
		env = append(env, envVar{tagEnvName(k), ev.SelfTags[k]})
	}
	switch ev.Type {
	case "user":
		env = append(env,
			envVar{"SERF_USER_EVENT", ev.UserEvent},
			envVar{"SERF_USER_LTIME", strconv.FormatUint(ev.LTime, 10)})
	case "query":
		env = append(env,
			envVar{"SERF_QUERY_NAME", ev.QueryName},
			envVar{"SERF_QUERY_LTIME", strconv.FormatUint(ev.LTime, 10)})
	}
	env = append(env, envVar{"SERF_SELF_ADDR", ev.SelfAddr})
	if ev.Type == "query" {
		env = append(env, envVar{"SERF_QUERY_SOURCE", ev.QuerySource})
	}
	// A NUL cannot travel in an environment; without this, one odd name
	// from the network would make every handler fail to start.
	for i := range env {
		env[i].value = strings.ReplaceAll(env[i].value, "\x00", "")
	}
	return env
}

// tagEnvName is the variable Serf gives a tag: SERF_TAG_ and the tag name
// upper-cased, with every character outside [A-Z0-9_] replaced by _.
func tagEnvName(tag string) string {
	var b strings.Builder
	b.WriteString("SERF_TAG_")
	for _, r := range strings.ToUpper(tag) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// scriptEnv assembles a run's environment: a fixed base, then the
// handler's configured variables, then the contract. A later value for the
// same key replaces an earlier one in place, so the contract wins.
func scriptEnv(path string, configured []envVar, contract []envVar, handler string, attempt int) []string {
	vars := make([]envVar, 0, 4+len(configured)+len(contract))
	vars = append(vars, envVar{"PATH", path}, envVar{"HOME", "/"}, envVar{"LANG", "C.UTF-8"})
	vars = append(vars, configured...)
	vars = append(vars, contract...)
	vars = append(vars, envVar{"SERF_HANDLER", handler}, envVar{"SERF_RUN_ATTEMPT", strconv.Itoa(max(attempt, 1))})

	index := make(map[string]int, len(vars))
	out := make([]string, 0, len(vars))
	for _, v := range vars {
		kv := v.key + "=" + v.value
		if i, ok := index[v.key]; ok {
			out[i] = kv
			continue
		}
		index[v.key] = len(out)
		out = append(out, kv)
	}
	return out
}

// memberStdin is a member event's stdin: one NAME\tADDR\tROLE\tTAGS line
// per member, TAGS being k=v pairs (role included) joined by commas in key
// order. Tabs and newlines inside a field become the two characters \t
// and \n, as Serf does; nothing else is escaped.
func memberStdin(members []Member) []byte {
	var b bytes.Buffer
	for _, m := range members {
		b.WriteString(escapeField(m.Name))
		b.WriteByte('\t')
		b.WriteString(escapeField(m.Addr))
		b.WriteByte('\t')
		b.WriteString(escapeField(m.Tags["role"]))
		b.WriteByte('\t')
		b.WriteString(escapeField(joinTags(m.Tags)))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func joinTags(tags map[string]string) string {
	pairs := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		pairs = append(pairs, k+"="+tags[k])
	}
	return strings.Join(pairs, ",")
}

func escapeField(s string) string {
	if !strings.ContainsAny(s, "\t\n") {
		return s
	}
	return strings.NewReplacer("\t", `\t`, "\n", `\n`).Replace(s)
}

// payloadStdin is a user event's or query's stdin: a copy of the payload,
// with a newline appended when it is non-empty and lacks one.
func payloadStdin(payload []byte) []byte {
	if len(payload) == 0 {
		return nil
	}
	out := make([]byte, len(payload), len(payload)+1)
	copy(out, payload)
	if out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}
