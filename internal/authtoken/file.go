package authtoken

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// LoadFile reads a tokens file (see ParseFile).
func LoadFile(name string) ([]Named, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	return ParseFile(data, name)
}

// ParseFile reads a tokens file: a mapping with one key, tokens, listing
// each token's name, the SHA-256 of its value and its scope:
//
//	tokens:
//	  - name: ci
//	    token_sha256: "9f86d0…"     # sha256 of the token; the file never holds a token
//	    kinds: [model]              # optional: the kinds it may delete (default: all)
//	    names: ["ci-*"]             # optional: globs a model's name must match
//	    max_ids_per_day: 5000       # optional: IDs it may enqueue per UTC day
//	    may: [rules, deadletters]   # optional: rights beyond enqueuing and reading
//
// Parsing is strict: an unknown or repeated key, a value of the wrong type
// or an empty list is refused with its line. Every problem is reported.
// file names the file in messages.
func ParseFile(data []byte, file string) ([]Named, error) {
	p := &fileParser{file: file}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, p.at(1, "the file is empty: want a mapping with a tokens: list")
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, p.at(root.Line, "want a mapping with a tokens: list")
	}
	var list *yaml.Node
	p.fields(root, func(k, v *yaml.Node) {
		if k.Value != "tokens" {
			p.add(k.Line, "unknown key %q (want tokens)", k.Value)
			return
		}
		list = v
	})
	switch {
	case list == nil:
		p.add(root.Line, "no tokens: list")
	case list.Kind != yaml.SequenceNode || len(list.Content) == 0:
		p.add(list.Line, "tokens must be a non-empty list")
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	var out []Named
	for _, n := range list.Content {
		if t, ok := p.token(n); ok {
			out = append(out, t)
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return out, nil
}

type fileParser struct {
	file string
	errs []error
}

func (p *fileParser) at(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", p.file, line, fmt.Sprintf(format, args...))
}

func (p *fileParser) add(line int, format string, args ...any) {
	p.errs = append(p.errs, p.at(line, format, args...))
}

// fields calls f for each key of a mapping, refusing repeated keys.
func (p *fileParser) fields(m *yaml.Node, f func(k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if first, ok := seen[k.Value]; ok {
			p.add(k.Line, "key %q given twice (first on line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		f(k, v)
	}
}

func (p *fileParser) token(n *yaml.Node) (Named, bool) {
	t := Named{Origin: p.file + ":" + strconv.Itoa(n.Line)}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "a token entry must be a mapping with name and token_sha256")
		return t, false
	}
	before := len(p.errs)
	var hasName, hasSum bool
	p.fields(n, func(k, v *yaml.Node) {
		switch k.Value {
		case "name":
			hasName = true
			if s, ok := p.str(v, "name"); ok {
				if err := CheckName(s); err != nil {
					p.add(v.Line, "%v", err)
				}
				t.Name = s
			}
		case "token_sha256":
			hasSum = true
			// Any scalar: 64 digits unquoted would read as a number.
			if v.Kind != yaml.ScalarNode {
				p.add(v.Line, "token_sha256: want 64 hex digits")
			} else {
				sum, err := ParseSum(v.Value)
				if err != nil {
					p.add(v.Line, "%v", err)
				}
				t.Sum = sum
			}
		case "kinds":
			for _, s := range p.list(v, "kinds") {
				k, err := modelid.ParseKind(s.Value)
				if err != nil {
					p.add(s.Line, "kinds: %v", err)
				}
				t.Scope.Kinds = append(t.Scope.Kinds, k)
			}
		case "names":
			for _, s := range p.list(v, "names") {
				if _, err := path.Match(s.Value, ""); err != nil || s.Value == "" {
					p.add(s.Line, "names: %q is not a glob such as \"ci-*\"", s.Value)
				}
				t.Scope.Names = append(t.Scope.Names, s.Value)
			}
		case "max_ids_per_day":
			n, err := strconv.ParseInt(v.Value, 10, 64)
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || err != nil || n < 1 {
				p.add(v.Line, "max_ids_per_day: want a whole number of at least 1 (leave it out for no cap)")
			}
			t.Scope.MaxIDsPerDay = n
		case "may":
			for _, s := range p.list(v, "may") {
				r, err := ParseRight(s.Value)
				if err != nil {
					p.add(s.Line, "may: %v", err)
				}
				t.Scope.May = append(t.Scope.May, r)
			}
		case "token":
			p.add(k.Line, "unknown key \"token\": the file holds token_sha256, the token's SHA-256, never the token")
		default:
			p.add(k.Line, "unknown key %q (want name, token_sha256, kinds, names, max_ids_per_day or may)", k.Value)
		}
	})
	if !hasName {
		p.add(n.Line, "the entry has no name")
	}
	if !hasSum {
		p.add(n.Line, "the entry has no token_sha256")
	}
	return t, len(p.errs) == before
}

func (p *fileParser) str(v *yaml.Node, what string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
		p.add(v.Line, "%s: want a string", what)
		return "", false
	}
	return v.Value, true
}

// list returns the string items of a non-empty sequence.
func (p *fileParser) list(v *yaml.Node, what string) []*yaml.Node {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		p.add(v.Line, "%s: want a non-empty list, such as [a, b]", what)
		return nil
	}
	var out []*yaml.Node
	for _, s := range v.Content {
		if s.Kind != yaml.ScalarNode || s.Tag != "!!str" {
			p.add(s.Line, "%s: want strings", what)
			continue
		}
		out = append(out, s)
	}
	return out
}
