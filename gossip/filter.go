package gossip

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
)

// queryFilter is a query's filters, as the sender gives them or as decoded
// from the wire, with the tag expressions compiled: the one rule of which
// members answer a query, used by the members receiving it (queryMatches)
// and by the sender counting whom to wait for (Answerers).
type queryFilter struct {
	// nodeSets: a member must be named in each (a query carries at most
	// one node filter from Serf, but every filter must pass).
	nodeSets [][]string
	tags     []tagMatch
}

type tagMatch struct {
	tag string
	re  *regexp.Regexp
}

// addTag compiles a tag filter; a member's missing tag is matched as ""
// (as Serf does, so ".*" selects members without the tag too).
func (f *queryFilter) addTag(tag, expr string) error {
	re, err := regexp.Compile(expr)
	if err != nil {
		return fmt.Errorf("tag filter %s=%q: %w", tag, expr, err)
	}
	f.tags = append(f.tags, tagMatch{tag: tag, re: re})
	return nil
}

// matches reports whether the member name with tags passes every filter.
func (f *queryFilter) matches(name string, tags map[string]string) bool {
	for _, set := range f.nodeSets {
		if !slices.Contains(set, name) {
			return false
		}
	}
	for _, t := range f.tags {
		if !t.re.MatchString(tags[t.tag]) {
			return false
		}
	}
	return true
}

// filterOf compiles the filters of p, tags in name order.
func filterOf(p *QueryParams) (*queryFilter, error) {
	f := &queryFilter{}
	if len(p.FilterNodes) > 0 {
		f.nodeSets = [][]string{p.FilterNodes}
	}
	tags := make([]string, 0, len(p.FilterTags))
	for tag := range p.FilterTags {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		if err := f.addTag(tag, p.FilterTags[tag]); err != nil {
			return nil, err
		}
	}
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
