// Package policy plans and runs retention rules, qfpurge's rule-driven purges. A Rule selects models or
// model versions from the account's inventory (by name, type, age and, for
// versions, rank within their model), may keep some of them (keep wins over
// delete), never deletes what a custom service uses unless told to, and
// stops at a limit per run.
//
// NewPlan is the one function that decides: a preview prints its Plan and a
// run enqueues exactly the Plan's deletions (Runner). Evaluate, the pure
// part of NewPlan, works on an inventory.Snapshot and the version details
// it asked for, so every decision is table-testable without I/O. Every preview and
// run is recorded in Redis (Store) with each planned ID and its reason, and
// the deletions carry the run's ID into the ledger.
package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Rule is one rule entry of a schedule file: what it deletes, what it keeps,
// whether it protects what services use, and its limit.
type Rule struct {
	// Name identifies the rule (the schedule entry's name).
	Name string `json:"name"`
	// Kind is what the rule deletes: models or model versions.
	Kind modelid.Kind `json:"kind"`
	// Delete selects what is deleted: an item matching any of them.
	Delete []Selector `json:"delete"`
	// Keep selects what is kept whatever Delete says.
	Keep []Selector `json:"keep,omitempty"`
	// DeleteInUse turns protection off (protect_in_use: false): items a
	// service uses are deleted like any other.
	DeleteInUse bool `json:"delete_in_use,omitempty"`
	// Limit stops a run that would delete too much. Zero fields take
	// DefaultLimit's.
	Limit Limit `json:"limit,omitzero"`
	// Line is where the rule starts in its file.
	Line int `json:"line,omitempty"`
}

// Selector is one selection: an item matches when every condition set in it
// holds. For versions, the name and type conditions are their model's.
type Selector struct {
	// Names are globs ("ci-*"; * any run of characters, ? one); any may match.
	Names []string `json:"name,omitempty"`
	// NameRegex is an RE2 expression the whole name must match.
	NameRegex string `json:"name_regex,omitempty"`
	// Types are model types (see ModelTypes); any may match.
	Types []string `json:"type,omitempty"`
	// OlderThan: created more than this long ago ("30d", "12h", "2w").
	OlderThan string `json:"older_than,omitempty"`
	// NewerThan: created less than this long ago.
	NewerThan string `json:"newer_than,omitempty"`
	// Newest (versions): among its model's N newest versions.
	Newest int `json:"newest,omitempty"`
	// ExceptNewest (versions): not among its model's N newest versions.
	ExceptNewest int `json:"except_newest,omitempty"`
	// Line is where the selection starts in its file.
	Line int `json:"line,omitempty"`

	globs     []*regexp.Regexp
	re        *regexp.Regexp
	types     map[string]bool
	olderThan time.Duration
	newerThan time.Duration
}

// Limit is the blast-radius guard of a rule: a plan deleting more than
// Count items, or more than Share of the items it considered, is blocked.
type Limit struct {
	Count int     `json:"count,omitempty"`
	Share float64 `json:"share,omitempty"` // a fraction in (0, 1]
}

// DefaultLimit applies where a rule sets no limit of its own.
var DefaultLimit = Limit{Count: 1000, Share: 0.10}

func (l Limit) withDefaults() Limit {
	if l.Count == 0 {
		l.Count = DefaultLimit.Count
	}
	if l.Share == 0 {
		l.Share = DefaultLimit.Share
	}
	return l
}

// String renders the limit as in the file: "count 1000, share 10%".
func (l Limit) String() string {
	l = l.withDefaults()
	return fmt.Sprintf("count %d, share %s", l.Count, pct(l.Share))
}

func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', -1, 64) + "%" }

// Problem is a mistake in a rule, at a line of its file.
type Problem struct {
	Line int
	Msg  string
}

// Compile checks the rule and prepares its selectors for matching. It
// returns every problem found; a rule with problems must not be used.
func (r *Rule) Compile() []Problem {
	var ps []Problem
	add := func(line int, format string, args ...any) {
		ps = append(ps, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	if _, err := modelid.ParseKind(string(r.Kind)); err != nil {
		add(r.Line, "rule %q: bad kind %q: want model or version", r.Name, r.Kind)
	}
	if len(r.Delete) == 0 {
		add(r.Line, "rule %q selects nothing to delete", r.Name)
	}
	if r.Limit.Count < 0 {
		add(r.Line, "rule %q: limit count %d must be positive", r.Name, r.Limit.Count)
	}
	if r.Limit.Share < 0 || r.Limit.Share > 1 {
		add(r.Line, "rule %q: limit share %s must be between 0%% and 100%%", r.Name, pct(r.Limit.Share))
	}
	for i := range r.Delete {
		ps = append(ps, r.Delete[i].compile(r.Kind, fmt.Sprintf("rule %q: delete #%d", r.Name, i+1), r.Line)...)
	}
	for i := range r.Keep {
		ps = append(ps, r.Keep[i].compile(r.Kind, fmt.Sprintf("rule %q: keep #%d", r.Name, i+1), r.Line)...)
	}
	return ps
}

// compiled reports whether Compile prepared the selector.
func (s *Selector) compiled() bool {
	return s.types != nil
}

func (s *Selector) compile(k modelid.Kind, where string, ruleLine int) []Problem {
	line := s.Line
	if line == 0 {
		line = ruleLine
	}
	var ps []Problem
	add := func(format string, args ...any) {
		ps = append(ps, Problem{Line: line, Msg: where + ": " + fmt.Sprintf(format, args...)})
	}
	s.globs, s.re, s.types = nil, nil, map[string]bool{}
	for _, g := range s.Names {
		if g == "" {
			add("empty name pattern")
			continue
		}
		s.globs = append(s.globs, globRE(g))
	}
	if s.NameRegex != "" {
		// Compiled as written, never pasted into a wrapper: "x)|(.*" must be
		// refused, not turned into an expression matching every name.
		re, err := regexp.Compile(s.NameRegex)
		if err != nil {
			add("bad name_regex %q: %v", s.NameRegex, err)
		} else {
			re.Longest()
		}
		s.re = re
	}
	for _, t := range s.Types {
		c, ok := canonicalType(t)
		if !ok {
			add("unknown model type %q: want one of %s", t, strings.Join(ModelTypes(), ", "))
			continue
		}
		s.types[c] = true
	}
	var err error
	if s.OlderThan != "" {
		if s.olderThan, err = ParseAge(s.OlderThan); err != nil {
			add("older_than: %v", err)
		}
	}
	if s.NewerThan != "" {
		if s.newerThan, err = ParseAge(s.NewerThan); err != nil {
			add("newer_than: %v", err)
		}
	}
	if s.Newest < 0 || s.ExceptNewest < 0 {
		add("newest and except_newest must be at least 1")
	}
	if (s.Newest > 0 || s.ExceptNewest > 0) && k == modelid.KindModel {
		add("newest and except_newest rank a model's versions: they need kind: version")
	}
	if s.Newest > 0 && s.ExceptNewest > 0 {
		add("newest and except_newest in one selection: choose one")
	}
	if len(s.Names) == 0 && s.NameRegex == "" && len(s.Types) == 0 && s.OlderThan == "" && s.NewerThan == "" &&
		s.Newest == 0 && s.ExceptNewest == 0 {
		add("an empty selection would match everything; write name: \"*\" if that is meant")
	}
	return ps
}

// globRE turns a glob into an anchored expression: * is any run of
// characters, ? one character, everything else itself.
func globRE(g string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, r := range g {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

var ageRE = regexp.MustCompile(`^([0-9]+)([dw])$`)

// ParseAge reads a positive age: a number of days ("30d") or weeks ("2w"),
// or a Go duration ("12h", "90m").
func ParseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if m := ageRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100*365 {
			return 0, fmt.Errorf("bad age %q: too large", s)
		}
		d = time.Duration(n) * 24 * time.Hour
		if m[2] == "w" {
			d *= 7
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("bad age %q: want a duration such as 30d, 2w or 12h", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("bad age %q: must be positive", s)
	}
	return d, nil
}

// modelTypes are the model types a rule may name: V1's names for its
// modelType numbers, with V2's names for them (Chinese text, and Text2Text
// as seen for LLMs).
var modelTypes = []struct {
	name    string
	aliases []string
}{
	{"LLM", []string{"大语言模型", "Text2Text"}},
	{"text-to-image", []string{"文生图大模型"}},
	{"industry-search", []string{"行业检索模型"}},
	{"text-representation", []string{"文本表示模型"}},
	{"vector", []string{"向量模型"}},
	{"image-understanding", []string{"图像理解模型"}},
}

// ModelTypes lists the type names a rule may use.
func ModelTypes() []string {
	out := make([]string, len(modelTypes))
	for i, t := range modelTypes {
		out[i] = t.name
	}
	return out
}

// canonicalType maps a type name or alias (case-insensitive) to its name.
func canonicalType(s string) (string, bool) {
	s = strings.TrimSpace(s)
	for _, t := range modelTypes {
		if strings.EqualFold(s, t.name) {
			return t.name, true
		}
		for _, a := range t.aliases {
			if strings.EqualFold(s, a) {
				return t.name, true
			}
		}
	}
	return "", false
}
