// Package schedule runs qfpurge's scheduled purges: a YAML file of named
// entries, each a cron spec with a time zone, a kind and either the IDs to
// delete (inline, or from a file re-read at each run) or a rule that
// chooses them from the inventory at each run (package policy).
//
// Entries are registered with Asynq's PeriodicTaskManager, so they show in
// `asynq cron ls` and asynqmon. At each tick the manager enqueues a small
// trigger task (TypeScheduledPurge); its Handler reads the IDs and enqueues
// them through the producer, or submits the entry's rule run. Every replica
// running the same schedule enqueues
// its own trigger, and the handler lets only the first trigger of each tick
// through (see Handler), so a fleet purges once per tick.
package schedule

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
)

// Entry is one scheduled purge.
type Entry struct {
	// Name identifies the entry; it keys the once-per-tick claim in Redis.
	Name string
	// Cron is the 5-field spec (or an @descriptor such as @daily or
	// @every 1h) without its time zone.
	Cron string
	// Timezone is the IANA zone the spec is read in. Defaults to UTC.
	Timezone string
	// Kind is what the IDs are: models or model versions.
	Kind modelid.Kind
	// IDs are the inline IDs; empty when File is set.
	IDs []modelid.ID
	// File holds the IDs (one per line, or JSON), re-read at each run. A
	// relative path is resolved against the schedule file's directory.
	File string
	// Rule, set on rule entries (those with delete:), chooses the IDs from
	// the inventory at each run; IDs and File are then empty.
	Rule *policy.Rule
	// DeleteInUse (delete_in_use: true on an ids or file entry) deletes
	// its IDs even where a service or batch task uses them; a rule entry
	// says protect_in_use: false instead.
	DeleteInUse bool
	// Line is where the entry starts in the schedule file.
	Line int
}

// Spec returns the cron spec handed to Asynq, with the time zone as a
// CRON_TZ= prefix (@every intervals have no time zone).
func (e Entry) Spec() string {
	if strings.HasPrefix(e.Cron, "@every") {
		return e.Cron
	}
	return "CRON_TZ=" + cmp.Or(e.Timezone, "UTC") + " " + e.Cron
}

// LineError is a problem at one line of a schedule file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Load reads and validates a schedule file. Every problem is reported as a
// *LineError (joined with errors.Join), so a bad file fails with its lines.
func Load(path string) ([]Entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	return Parse(data, path)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// entryFields are the keys an entry may have; policy.Fields make it a
// rule entry.
var entryFields = map[string]bool{
	"name": true, "cron": true, "timezone": true, "kind": true,
	"ids": true, "file": true, "string": true, "delete_in_use": true,
	"delete": true, "keep": true, "protect_in_use": true, "limit": true,
}

// Parse validates a schedule document. path names the file in errors and
// anchors relative file: paths; it may be empty.
//
// The document is a mapping with one key, schedules, holding a list of
// entries:
//
//	schedules:
//	  - name: nightly-models
//	    cron: "0 3 * * *"
//	    timezone: Asia/Shanghai
//	    kind: model
//	    ids: [585, "am-xyz"]
//	  - name: ci-leftovers
//	    cron: "@daily"
//	    kind: version
//	    delete: {name: "ci-*", older_than: 30d}
//	    keep: {newest: 3}
func Parse(data []byte, path string) ([]Entry, error) {
	p := &parser{file: path}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, p.at(1, "the file is empty: want a mapping with a schedules: list")
		}
		return nil, p.yamlErr(err, data)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, p.at(root.Line, "want a mapping with a schedules: list")
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "schedules" {
			p.add(k.Line, "unknown field %q (want schedules)", k.Value)
			continue
		}
		list = v
	}
	if list == nil {
		if len(p.errs) == 0 {
			p.add(root.Line, "no schedules: list")
		}
		return nil, errors.Join(p.errs...)
	}
	if list.Kind != yaml.SequenceNode {
		p.add(list.Line, "schedules must be a list of entries")
		return nil, errors.Join(p.errs...)
	}
	var entries []Entry
	seen := map[string]int{}
	for _, n := range list.Content {
		// Names are checked on invalid entries too, so one pass reports
		// every problem of the file.
		e, ok := p.entry(n)
		if e.Name != "" {
			if first, dup := seen[e.Name]; dup {
				p.add(e.Line, "duplicate name %q (first at line %d)", e.Name, first)
				continue
			}
			seen[e.Name] = e.Line
		}
		if ok {
			entries = append(entries, e)
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return entries, nil
}

type parser struct {
	file string
	errs []error
}

func (p *parser) at(line int, format string, args ...any) error {
	return &LineError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) add(line int, format string, args ...any) {
	p.errs = append(p.errs, p.at(line, format, args...))
}

var anchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// yamlErr turns yaml.v3's "yaml: line N: msg" into a LineError.
func (p *parser) yamlErr(err error, data []byte) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := anchorRE.FindStringSubmatch(msg); m != nil {
		// An unquoted glob such as *-keep reads as an alias, and yaml.v3
		// names no line for it.
		for i, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "*"+m[1]) {
				return p.at(i+1, "%s: quote a name pattern that starts with *, e.g. name: \"*%s\"", msg, m[1])
			}
		}
	}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if n, convErr := strconv.Atoi(rest[:i]); convErr == nil {
				return p.at(n, "%s", strings.TrimSpace(rest[i+1:]))
			}
		}
	}
	return p.at(1, "%s", msg)
}

func (p *parser) entry(n *yaml.Node) (Entry, bool) {
	e := Entry{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "an entry must be a mapping with name, cron, kind and ids or file")
		return e, false
	}
	before := len(p.errs)
	f := p.fields(n)
	name, nn := f.str("name")
	switch {
	case nn == nil:
		p.add(n.Line, "entry has no name")
	case !nameRE.MatchString(name):
		p.add(nn.Line, "bad name %q: use up to 64 letters, digits, '.', '_' or '-'", name)
	}
	e.Name = name
	where := "entry"
	if name != "" {
		where = fmt.Sprintf("entry %q", name)
	}
	kind, kn := f.str("kind")
	if kn == nil {
		p.add(n.Line, "%s has no kind (want model or version)", where)
	} else if k, err := modelid.ParseKind(kind); err != nil {
		p.add(kn.Line, "%s: bad kind %q: want model or version", where, kind)
	} else {
		e.Kind = k
	}
	p.when(&e, f, where)
	p.what(&e, f, where)
	return e, len(p.errs) == before
}

// fields are one entry's fields by name.
type fields struct {
	p     *parser
	line  int
	nodes map[string]*yaml.Node
}

// fields reads an entry's mapping, reporting unknown and repeated fields.
func (p *parser) fields(n *yaml.Node) fields {
	f := fields{p: p, line: n.Line, nodes: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !entryFields[k.Value] {
			p.add(k.Line, "unknown field %q (want name, cron, timezone, kind, ids, file or string; or delete, keep, protect_in_use and limit for a rule)", k.Value)
			continue
		}
		if _, dup := f.nodes[k.Value]; dup {
			p.add(k.Line, "field %q given twice", k.Value)
			continue
		}
		f.nodes[k.Value] = v
	}
	return f
}

// str returns a scalar field's trimmed value and its node (nil if absent).
func (f fields) str(key string) (string, *yaml.Node) {
	v := f.nodes[key]
	if v == nil {
		return "", nil
	}
	if v.Kind != yaml.ScalarNode {
		f.p.add(v.Line, "%s must be a single value", key)
		return "", v
	}
	return strings.TrimSpace(v.Value), v
}

// when reads the cron spec and the time zone.
func (p *parser) when(e *Entry, f fields, where string) {
	tz, tzn := f.str("timezone")
	spec, cn := f.str("cron")
	if cn == nil {
		p.add(f.line, "%s has no cron spec", where)
	} else {
		if prefix, rest, ok := cutTZ(spec); ok {
			if tzn != nil && tz != prefix {
				p.add(cn.Line, "%s: time zone given twice (timezone: %q and %q in cron)", where, tz, prefix)
			}
			tz, spec, tzn = prefix, rest, cn
		}
		e.Cron = spec
	}
	if tzn != nil {
		if tz == "" {
			p.add(tzn.Line, "%s: empty timezone", where)
		} else if _, err := time.LoadLocation(tz); err != nil {
			p.add(tzn.Line, "%s: bad timezone %q: want an IANA name such as Asia/Shanghai or UTC", where, tz)
		} else {
			e.Timezone = tz
		}
	}
	if cn != nil && (tzn == nil || e.Timezone != "") {
		if _, err := parseSpec(e.Spec()); err != nil {
			p.add(cn.Line, "%s: bad cron %q: %v (want 5 fields: minute hour day-of-month month day-of-week, or @hourly, @daily, @every 1h ...)", where, e.Cron, err)
		}
	}
}

// what reads what the entry deletes: inline ids, a file, or a rule.
func (p *parser) what(e *Entry, f fields, where string) {
	idsNode, fileNode, ruleNode := f.nodes["ids"], f.nodes["file"], f.nodes["delete"]
	switch {
	case idsNode == nil && fileNode == nil && ruleNode == nil:
		p.add(f.line, "%s has no ids, file or delete rule", where)
	case idsNode != nil && fileNode != nil:
		p.add(fileNode.Line, "%s has both ids and file: choose one", where)
	case ruleNode != nil && (idsNode != nil || fileNode != nil):
		p.add(ruleNode.Line, "%s has both a delete rule and fixed IDs: choose one", where)
	case ruleNode != nil:
		if e.Kind != "" {
			e.Rule = p.rule(e.Name, e.Kind, f.line, f.nodes)
		}
	case idsNode != nil:
		e.IDs = p.inlineIDs(idsNode, where, e.Kind)
	default:
		file, _ := f.str("file")
		if file == "" {
			p.add(fileNode.Line, "%s: empty file", where)
		} else {
			if !filepath.IsAbs(file) && p.file != "" {
				file = filepath.Join(filepath.Dir(p.file), file)
			}
			e.File = file
		}
	}
	if s, dn := f.str("delete_in_use"); dn != nil {
		b, err := strconv.ParseBool(s)
		switch {
		case err != nil || dn.Tag != "!!bool":
			p.add(dn.Line, "%s: delete_in_use: want true or false", where)
		case ruleNode != nil:
			p.add(dn.Line, "%s: a rule entry says protect_in_use: false instead of delete_in_use", where)
		default:
			e.DeleteInUse = b
		}
	}
	if ruleNode == nil {
		for _, name := range policy.Fields[1:] {
			if v := f.nodes[name]; v != nil {
				p.add(v.Line, "%s: %s only applies to a rule entry (one with delete:)", where, name)
			}
		}
	}
	// string: true once read a file's bare numbers as string IDs; Qianfan's
	// string IDs are told by their am-/amv- form now, so it would only turn
	// every int ID of the file into an error at run time.
	if s, sn := f.str("string"); sn != nil {
		if b, err := strconv.ParseBool(s); err != nil || sn.Tag != "!!bool" || b {
			p.add(sn.Line, "%s: string: is no longer used: a bare number is an int ID and string IDs are told by their am- or amv- prefix; remove it", where)
		}
	}
}

// rule reads a rule entry's rule (see policy.FromYAML).
func (p *parser) rule(name string, kind modelid.Kind, line int, fields map[string]*yaml.Node) *policy.Rule {
	rf := map[string]*yaml.Node{}
	for _, f := range policy.Fields {
		if v := fields[f]; v != nil {
			rf[f] = v
		}
	}
	r, problems := policy.FromYAML(name, kind, line, rf)
	for _, pr := range problems {
		p.add(pr.Line, "%s", pr.Msg)
	}
	if len(problems) > 0 {
		return nil
	}
	return &r
}

// inlineIDs reads a YAML list by modelid's rule: plain scalars as bare text
// (585 an int ID, am-xyz a string ID), quoted ones as explicit strings (a
// Qianfan string ID; a quoted number is refused), and each checked against
// the entry's kind when it is known.
func (p *parser) inlineIDs(n *yaml.Node, where string, k modelid.Kind) []modelid.ID {
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, "%s: ids must be a list, e.g. [585, am-xyz]", where)
		return nil
	}
	if len(n.Content) == 0 {
		p.add(n.Line, "%s: ids is empty", where)
		return nil
	}
	var ids []modelid.ID
	for _, v := range n.Content {
		if v.Kind != yaml.ScalarNode {
			p.add(v.Line, "%s: invalid inline ID: want a number or a string", where)
			continue
		}
		var (
			id  modelid.ID
			err error
		)
		switch {
		case v.Tag == "!!str" && v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
			id, err = modelid.ParseString(v.Value)
		case v.Tag == "!!str", v.Tag == "!!int", v.Tag == "!!float":
			id, err = modelid.ParseID(v.Value)
		default:
			err = fmt.Errorf("want a whole number or a string, not %s", strings.TrimPrefix(v.Tag, "!!"))
		}
		if err == nil && k != "" {
			err = id.CheckKind(k)
		}
		if err != nil {
			p.add(v.Line, "%s: invalid inline ID %q: %v", where, v.Value, err)
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// cutTZ splits a "CRON_TZ=Zone spec" (or "TZ=Zone spec") prefix off.
func cutTZ(spec string) (tz, rest string, ok bool) {
	for _, pre := range []string{"CRON_TZ=", "TZ="} {
		if r, found := strings.CutPrefix(spec, pre); found {
			tz, rest, _ = strings.Cut(r, " ")
			return tz, strings.TrimSpace(rest), true
		}
	}
	return "", spec, false
}

// parseSpec parses a spec the way Asynq's scheduler does (robfig/cron's
// standard parser) and rejects specs that never fire.
func parseSpec(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, err
	}
	if s.Next(time.Now()).IsZero() {
		return nil, errors.New("it never fires")
	}
	return s, nil
}
