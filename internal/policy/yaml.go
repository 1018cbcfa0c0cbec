package policy

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Fields are the keys a rule adds to a schedule entry; an entry with
// delete is a rule entry.
var Fields = []string{"delete", "keep", "protect_in_use", "limit"}

var selectorFields = []string{"name", "name_regex", "type", "older_than", "newer_than", "newest", "except_newest"}

// FromYAML builds the rule of a schedule entry from its rule fields (see
// Fields), checks it and compiles it. line is where the entry starts. Every
// problem is returned with its line; a rule with problems must not be used.
//
//	delete:                 # a selection, or a list of them (any may match)
//	  name: "ci-*"          # globs; or name_regex: RE2 over the whole name
//	  type: LLM             # model types
//	  older_than: 30d       # created more than 30 days ago (also newer_than)
//	  except_newest: 3      # versions: not among their model's 3 newest (also newest)
//	keep:                   # the same; what matches is kept, whatever delete says
//	  - name: "*-keep"
//	protect_in_use: true    # the default: never delete what a service uses
//	limit: {count: 1000, share: 10%}
func FromYAML(name string, kind modelid.Kind, line int, fields map[string]*yaml.Node) (Rule, []Problem) {
	p := &yparser{}
	r := Rule{Name: name, Kind: kind, Line: line}
	if n := fields["delete"]; n != nil {
		r.Delete = p.selectors(n, "delete")
	} else {
		p.add(line, "rule %q has no delete: selection", name)
	}
	if n := fields["keep"]; n != nil {
		r.Keep = p.selectors(n, "keep")
	}
	if n := fields["protect_in_use"]; n != nil {
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || err != nil {
			p.add(n.Line, "protect_in_use must be true or false")
		}
		r.DeleteInUse = err == nil && !b
	}
	if n := fields["limit"]; n != nil {
		r.Limit = p.limit(n)
	}
	if len(p.ps) > 0 {
		return r, p.ps
	}
	return r, r.Compile()
}

type yparser struct{ ps []Problem }

func (p *yparser) add(line int, format string, args ...any) {
	p.ps = append(p.ps, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *yparser) selectors(n *yaml.Node, what string) []Selector {
	switch n.Kind {
	case yaml.MappingNode:
		return []Selector{p.selector(n, what)}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			p.add(n.Line, "%s is an empty list", what)
		}
		var out []Selector
		for _, c := range n.Content {
			if c.Kind != yaml.MappingNode {
				p.add(c.Line, "each %s selection must be a mapping, e.g. {name: \"ci-*\", older_than: 30d}", what)
				continue
			}
			out = append(out, p.selector(c, what))
		}
		return out
	}
	p.add(n.Line, "%s must be a selection (a mapping) or a list of them", what)
	return nil
}

func (p *yparser) selector(n *yaml.Node, what string) Selector {
	s := Selector{Line: n.Line}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.add(k.Line, "%s: field %q given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "name":
			s.Names = p.strings(v, what+": name")
		case "type":
			s.Types = p.strings(v, what+": type")
		case "name_regex":
			s.NameRegex = p.str(v, what+": name_regex")
		case "older_than":
			s.OlderThan = p.str(v, what+": older_than")
		case "newer_than":
			s.NewerThan = p.str(v, what+": newer_than")
		case "newest":
			s.Newest = p.count(v, what+": newest")
		case "except_newest":
			s.ExceptNewest = p.count(v, what+": except_newest")
		default:
			p.add(k.Line, "%s: unknown field %q (want %s)", what, k.Value, strings.Join(selectorFields, ", "))
		}
	}
	return s
}

func (p *yparser) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		p.add(n.Line, "%s must be a single non-empty value", what)
		return ""
	}
	return n.Value
}

// strings reads one value or a list of them.
func (p *yparser) strings(n *yaml.Node, what string) []string {
	if n.Kind == yaml.ScalarNode {
		if v := p.str(n, what); v != "" {
			return []string{v}
		}
		return nil
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.add(n.Line, "%s must be a value or a non-empty list of values", what)
		return nil
	}
	var out []string
	for _, c := range n.Content {
		if v := p.str(c, what); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (p *yparser) count(n *yaml.Node, what string) int {
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil || v < 1 {
		p.add(n.Line, "%s must be a whole number of at least 1", what)
		return 0
	}
	return v
}

func (p *yparser) limit(n *yaml.Node) Limit {
	var l Limit
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "limit must be a mapping, e.g. {count: 1000, share: 10%%}")
		return l
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "count":
			l.Count = p.count(v, "limit: count")
		case "share":
			s, ok := strings.CutSuffix(strings.TrimSpace(v.Value), "%")
			f, err := strconv.ParseFloat(s, 64)
			if v.Kind != yaml.ScalarNode || !ok || err != nil || f <= 0 || f > 100 {
				p.add(v.Line, "limit: share must be a percentage above 0%% and at most 100%%, e.g. 10%%")
				continue
			}
			l.Share = f / 100
		default:
			p.add(k.Line, "limit: unknown field %q (want count or share)", k.Value)
		}
	}
	return l
}
