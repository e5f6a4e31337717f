package gossip

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
)

// queryFilter is a query's filters, as the sender gives them or as decoded
// from the wire, with the tag expressions compiled: the one rule of which
// members answer a query, used by the members receiving it (queryMatches)
// and by the sender counting whom to wait for (Answerers).
type queryFilter struct {
	// nodeSets: a member must be named in each (a query carries at most
	// one node filter from Serf, but every filter must pass).
	nodeSets [][]string
	tags     TagFilter
}

// TagFilter is a compiled set of tag filters, each a tag name and a
// regular expression the member's value of that tag must match. It is
// serfd's one rule for matching tags against expressions: queries' tag
// filters use it unanchored, as Serf; callers that select by tag for
// other ends (the daemon's handler blocks) use it anchored. The zero value
// has no filter and matches everything.
type TagFilter struct {
	tags []tagMatch // in tag name order
}

type tagMatch struct {
	tag string
	re  *regexp.Regexp
}

// CompileTagFilter compiles filters (tag name -> regular expression, Go's
// RE2 syntax). Unanchored, an expression matches anywhere in the value, as
// Serf's query filters do: "web" matches "web-2". Anchored, it must match
// the whole value: "web" matches only "web", "web|api" either, "eu-.*"
// every value starting with "eu-". The error names every tag whose
// expression does not compile, in name order.
func CompileTagFilter(filters map[string]string, anchored bool) (TagFilter, error) {
	var f TagFilter
	var errs []error
	for _, tag := range slices.Sorted(maps.Keys(filters)) {
		if err := f.add(tag, filters[tag], anchored); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return TagFilter{}, err
	}
	return f, nil
}

// add compiles one tag filter. The expression is checked on its own first,
// so that an error quotes it as written rather than anchored.
func (f *TagFilter) add(tag, expr string, anchored bool) error {
	re, err := regexp.Compile(expr)
	if err == nil && anchored {
		re, err = regexp.Compile(`^(?:` + expr + `)$`)
	}
	if err != nil {
		return fmt.Errorf("tag filter %s=%q: %w", tag, expr, err)
	}
	f.tags = append(f.tags, tagMatch{tag: tag, re: re})
	return nil
}

// Empty reports whether f has no filter (and so matches everything).
func (f TagFilter) Empty() bool { return len(f.tags) == 0 }

// Matches reports whether tags pass every filter. A missing tag is matched
// as "" (as Serf does, so ".*" selects members without the tag too).
func (f TagFilter) Matches(tags map[string]string) bool {
	for _, t := range f.tags {
		if !t.re.MatchString(tags[t.tag]) {
			return false
		}
	}
	return true
}

// matches reports whether the member name with tags passes every filter.
func (f *queryFilter) matches(name string, tags map[string]string) bool {
	for _, set := range f.nodeSets {
		if !slices.Contains(set, name) {
			return false
		}
	}
	return f.tags.Matches(tags)
}

// filterOf compiles the filters of p, tags in name order.
func filterOf(p *QueryParams) (*queryFilter, error) {
	f := &queryFilter{}
	if len(p.FilterNodes) > 0 {
		f.nodeSets = [][]string{p.FilterNodes}
	}
	tags, err := CompileTagFilter(p.FilterTags, false)
	if err != nil {
		return nil, err
	}
	f.tags = tags
	return f, nil
}

// Answerers returns the names of the alive members that a query with p's
// filters selects: those that will run it and may answer. The error wraps
// ErrInvalid for a tag expression that does not compile.
func (c *Cluster) Answerers(p *QueryParams) ([]string, error) {
	if p == nil {
		p = &QueryParams{}
	}
	f, err := filterOf(p)
	if err != nil {
		return nil, errorf(ErrInvalid, "%w", err)
	}
	var out []string
	for _, m := range c.Members() {
		if m.Status == StatusAlive && f.matches(m.Name, m.Tags) {
			out = append(out, m.Name)
		}
	}
	return out, nil
}
