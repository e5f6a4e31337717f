package exec

import (
	"errors"
	"fmt"
	"strings"
)

// filterHelp lists the accepted filter forms for error messages.
const filterHelp = "want member-join, member-leave, member-failed, member-update, member-reap, user, user:NAME, query, query:NAME or *"

// filterRule is one element of an event filter. event is "*" or an event
// type; name, for user and query, restricts the rule to that event or query
// name ("" matches every name).
type filterRule struct {
	event string
	name  string
}

// filter is a handler's compiled HandlerConfig.Events. The zero value (no
// rules) matches every event, as an unfiltered Serf handler does.
type filter []filterRule

// ValidateFilter reports whether spec is a valid element of
// HandlerConfig.Events in Serf's syntax: member-join, member-leave,
// member-failed, member-update, member-reap, user, user:NAME, query,
// query:NAME or *, or a comma-separated list of those. Names match exactly.
func ValidateFilter(spec string) error {
	_, err := parseFilter(spec)
	return err
}

// parseFilter compiles one filter spec, possibly a comma-separated list.
func parseFilter(spec string) ([]filterRule, error) {
	if spec == "" {
		return nil, errors.New("empty event filter; " + filterHelp)
	}
	var rules []filterRule
	for part := range strings.SplitSeq(spec, ",") {
		r, err := parseRule(part)
		if err != nil {
			if part != spec {
				return nil, fmt.Errorf("event filter %q: %w", spec, err)
			}
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseRule(part string) (filterRule, error) {
	switch part {
	case "":
		return filterRule{}, errors.New("empty element in event filter; " + filterHelp)
	case "*", "member-join", "member-leave", "member-failed", "member-update", "member-reap", "user", "query":
		return filterRule{event: part}, nil
	}
	event, name, ok := strings.Cut(part, ":")
	if !ok {
		return filterRule{}, fmt.Errorf("unknown event filter %q; %s", part, filterHelp)
	}
	switch event {
	case "user", "query":
		if name == "" {
			return filterRule{}, fmt.Errorf("event filter %q: empty %s name after %q", part, event, event+":")
		}
		return filterRule{event: event, name: name}, nil
	case "*", "member-join", "member-leave", "member-failed", "member-update", "member-reap":
		return filterRule{}, fmt.Errorf("event filter %q: only user and query take a :NAME", part)
	}
	return filterRule{}, fmt.Errorf("unknown event filter %q; %s", part, filterHelp)
}

// compileFilter compiles a handler's Events list.
func compileFilter(specs []string) (filter, error) {
	var f filter
	for _, spec := range specs {
		rules, err := parseFilter(spec)
		if err != nil {
			return nil, err
		}
		f = append(f, rules...)
	}
	return f, nil
}

// match reports whether ev passes the filter.
func (f filter) match(ev *Event) bool {
	if len(f) == 0 {
		return true
	}
	for _, r := range f {
		switch {
		case r.event == "*":
			return true
		case r.event != ev.Type:
		case r.name == "":
			return true
		case r.event == "user" && r.name == ev.UserEvent:
			return true
		case r.event == "query" && r.name == ev.QueryName:
			return true
		}
	}
	return false
}

// Filter is a compiled event filter in Serf's syntax, for matching events
// outside the pool (Serf's RPC event streams).
type Filter struct{ f filter }

// CompileFilter compiles a comma-separated filter spec; "" matches every
// event.
func CompileFilter(spec string) (Filter, error) {
	if spec == "" {
		return Filter{}, nil
	}
	rules, err := parseFilter(spec)
	return Filter{f: rules}, err
}

// Matches reports whether ev passes the filter.
func (f Filter) Matches(ev *Event) bool { return f.f.match(ev) }

// tagTest is a handler's compiled HandlerConfig.Tags (Options.CompileTags);
// nil when it has none, which lets every event through whole.
type tagTest func(tags map[string]string) bool

// isMemberEvent reports whether ev is about members (member-join, -leave,
// -failed, -update, -reap) rather than a user event or a query.
func isMemberEvent(ev *Event) bool { return ev.Type != "user" && ev.Type != "query" }

// apply decides whether a handler with this tag test runs for ev, and for
// which members. A member event is matched member by member, on each
// member's own tags: members are those that pass, in the event's order,
// and run is false when none does. A user event or a query has no member
// to match: run says whether this node's own tags (ev.SelfTags) pass, and
// members is ev.Members as it is.
func (t tagTest) apply(ev *Event) (members []Member, run bool) {
	if t == nil {
		return ev.Members, true
	}
	if !isMemberEvent(ev) {
		return ev.Members, t(ev.SelfTags)
	}
	for _, m := range ev.Members {
		if t(m.Tags) {
			members = append(members, m)
		}
	}
	return members, len(members) > 0
}
