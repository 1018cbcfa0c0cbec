package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func daysAgo(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }

// parseRule reads one schedule entry's rule fields from YAML.
func parseRule(t *testing.T, kind modelid.Kind, src string) Rule {
	t.Helper()
	r, ps := parseRuleProblems(t, kind, src)
	if len(ps) > 0 {
		t.Fatalf("problems: %v", ps)
	}
	return r
}

func parseRuleProblems(t *testing.T, kind modelid.Kind, src string) (Rule, []Problem) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		fields[root.Content[i].Value] = root.Content[i+1]
	}
	return FromYAML("test", kind, 1, fields)
}

// row is an item as the tables compare it.
type row struct {
	ID       string
	Action   Action
	Reason   string // a substring of the reason
	Services int
}

func rows(items []Item) map[string]row {
	out := map[string]row{}
	for _, it := range items {
		out[it.ID] = row{ID: it.ID, Action: it.Action, Reason: it.Reason, Services: len(it.Services)}
	}
	return out
}

func checkRows(t *testing.T, want []row, got []Item) {
	t.Helper()
	g := rows(got)
	if len(g) != len(want) {
		t.Errorf("%d items, want %d: %+v", len(g), len(want), got)
	}
	for _, w := range want {
		r, ok := g[w.ID]
		if !ok {
			t.Errorf("%s: not in the plan", w.ID)
			continue
		}
		if r.Action != w.Action || r.Services != w.Services || !strings.Contains(r.Reason, w.Reason) {
			t.Errorf("%s: %s with %d services, reason %q; want %s with %d services, reason containing %q",
				w.ID, r.Action, r.Services, r.Reason, w.Action, w.Services, w.Reason)
		}
	}
}

func TestEvaluateModels(t *testing.T) {
	t.Parallel()
	r := parseRule(t, modelid.KindModel, `
delete: {name: "exp-*", older_than: 90d}
keep:
  - name: "*-keep"
limit: {count: 100, share: 100%}
`)
	snap := &inventory.Snapshot{Taken: now, Models: []inventory.Model{
		{ID: "am-old", Name: "exp-chat-1", Created: daysAgo(100), Versions: []string{"amv-old1"}},
		{ID: "am-keep", Name: "exp-chat-2-keep", Created: daysAgo(100)},
		{ID: "am-new", Name: "exp-chat-3", Created: daysAgo(10)},
		{ID: "am-prod", Name: "prod-chat-4", Created: daysAgo(400)},
		{ID: "am-used", Name: "exp-chat-5", Created: daysAgo(100), Versions: []string{"amv-used1"}},
		{ID: "am-vused", Name: "exp-chat-6", Created: daysAgo(100), Versions: []string{"amv-a", "amv-served"}},
		{ID: "am-notime", Name: "exp-chat-7"},
		{ID: "am-batch", Name: "exp-chat-8", Created: daysAgo(100), Versions: []string{"amv-batch"}},
	}, Services: []inventory.Service{
		{Kind: inventory.KindService, ID: "svco-1", Name: "svc-a", Status: "Stopped", Protocol: 1, Models: []string{"am-used"}},
		{Kind: inventory.KindService, ID: "svco-2", Name: "svc-b", Status: "Failed", Protocol: 2, Versions: []string{"amv-served"}},
		{Kind: inventory.KindBatchTask, ID: "infer-1", Name: "nightly", Status: "Running", Versions: []string{"amv-batch"}},
	}}
	p, err := Evaluate(&r, snap, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, []row{
		{ID: "am-old", Action: ActionDelete, Reason: `delete #1 (line 2): name matches "exp-*"; created 2026-02-21, more than 90d ago`},
		{ID: "am-keep", Action: ActionKeep, Reason: `kept by keep #1 (line 4): name matches "*-keep"`},
		{ID: "am-used", Action: ActionProtect, Reason: "used by service svc-a (svco-1, protocol v1, Stopped)", Services: 1},
		{ID: "am-vused", Action: ActionProtect, Reason: "used by service svc-b (svco-2, protocol v2, Failed)", Services: 1},
		{ID: "am-batch", Action: ActionProtect, Reason: "used by batch inference task nightly (infer-1, Running)", Services: 1},
	}, p.Items)
	want := Totals{Considered: 8, Matched: 5, Delete: 1, Keep: 1, Protect: 3}
	if diff := cmp.Diff(want, p.Totals); diff != "" {
		t.Errorf("totals (-want +got)\n%s", diff)
	}
	if p.Blocked != "" || !p.Protection {
		t.Errorf("blocked %q, protection %v", p.Blocked, p.Protection)
	}
	if diff := cmp.Diff([]modelid.ID{modelid.StringID("am-old")}, p.Deletions(), cmp.Comparer(func(a, b modelid.ID) bool { return a == b })); diff != "" {
		t.Errorf("deletions (-want +got)\n%s", diff)
	}
}

func versionSnap() (*inventory.Snapshot, map[string][]inventory.Version) {
	snap := &inventory.Snapshot{Taken: now, Models: []inventory.Model{
		{ID: "am-ci", Name: "ci-run-1", Type: "大语言模型", Created: daysAgo(200), Versions: []string{"amv-1", "amv-2", "amv-3", "amv-4", "amv-5"}},
		{ID: "am-x", Name: "prod-x", Created: daysAgo(200), Versions: []string{"amv-x1", "amv-x2", "amv-x3", "amv-x4"}},
		{ID: "am-whole", Name: "ci-run-2", Created: daysAgo(200), Versions: []string{"amv-w1", "amv-w2", "amv-w3", "amv-w4"}},
	}, Services: []inventory.Service{
		{ID: "svco-1", Name: "svc-ci", Status: "Serving", Models: []string{"am-ci"}, Versions: []string{"amv-2"}},
		{ID: "svco-2", Name: "svc-old", Status: "Stopped", Models: []string{"am-whole"}},
	}}
	details := map[string][]inventory.Version{
		"am-ci": {
			{ID: "amv-1", Version: "1", Created: daysAgo(190)},
			{ID: "amv-2", Version: "2", Created: daysAgo(150)},
			{ID: "amv-3", Version: "3", Created: daysAgo(20)}, // among the 3 newest, and young
			{ID: "amv-4", Version: "4", Created: daysAgo(10)},
			{ID: "amv-5", Version: "5", Created: daysAgo(5)},
		},
		"am-whole": {
			{ID: "amv-w1", Version: "1", Created: daysAgo(190)},
			{ID: "amv-w2", Version: "2", Created: daysAgo(180)},
			{ID: "amv-w3", Version: "3", Created: daysAgo(170)},
			{ID: "amv-w4", Version: "4", Created: daysAgo(160)},
		},
	}
	return snap, details
}

func TestEvaluateVersions(t *testing.T) {
	t.Parallel()
	r := parseRule(t, modelid.KindVersion, `
delete: {name: "ci-*", older_than: 30d}
keep: {newest: 3}
limit: {count: 100, share: 100%}
`)
	snap, details := versionSnap()
	p, err := Evaluate(&r, snap, details, now)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, []row{
		{ID: "amv-1", Action: ActionDelete, Reason: "created 2025-11-23, more than 30d ago"},
		{ID: "amv-2", Action: ActionProtect, Reason: "used by svc-ci (svco-1, Serving)", Services: 1},
		// A service naming the model but no version may run any of them.
		{ID: "amv-w1", Action: ActionProtect, Reason: "svc-old", Services: 1},
		{ID: "amv-w2", Action: ActionKeep, Reason: "keep #1 (line 3): 3rd newest of 4, among the 3 newest"},
		{ID: "amv-w3", Action: ActionKeep, Reason: "2nd newest"},
		{ID: "amv-w4", Action: ActionKeep, Reason: "1st newest"},
	}, p.Items)
	if p.Totals.Considered != 13 || p.Totals.Delete != 1 {
		t.Errorf("totals %+v", p.Totals)
	}
	for _, it := range p.Items {
		if it.ID == "amv-1" && (it.Model != "am-ci" || it.Rank != 5 || it.Name != "ci-run-1") {
			t.Errorf("amv-1 item %+v", it)
		}
	}
}

// TestEvaluateExceptNewest: the same choice written inside the delete
// selection; unknown facts never delete.
func TestEvaluateExceptNewest(t *testing.T) {
	t.Parallel()
	r := parseRule(t, modelid.KindVersion, `
delete: {name: "ci-*", older_than: 30d, except_newest: 3}
protect_in_use: false
limit: {count: 100, share: 100%}
`)
	snap, details := versionSnap()
	details["am-ci"][0].Created = time.Time{} // unknown: ranked newest, never old
	p, err := Evaluate(&r, snap, details, now)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, []row{
		{ID: "amv-2", Action: ActionDelete, Reason: "5th newest of 5, beyond the 3 newest; in use, but the rule has protect_in_use: false"},
		{ID: "amv-w1", Action: ActionDelete, Reason: "4th newest of 4"},
	}, p.Items)
	if p.Protection {
		t.Error("plan says protection is on")
	}
}

func TestEvaluateWithoutDetailsDeletesNothingByAge(t *testing.T) {
	t.Parallel()
	r := parseRule(t, modelid.KindVersion, `delete: {name: "ci-*", older_than: 30d}`)
	snap, _ := versionSnap()
	p, err := Evaluate(&r, snap, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 0 || p.Totals.Considered != 13 {
		t.Errorf("items %+v, totals %+v", p.Items, p.Totals)
	}
}

func TestEvaluateUnknownTypeIsKept(t *testing.T) {
	t.Parallel()
	r := parseRule(t, modelid.KindModel, `
delete: {name: "*"}
keep: {type: [LLM, vector]}
limit: {share: 100%}
`)
	snap := &inventory.Snapshot{Models: []inventory.Model{
		{ID: "am-llm", Name: "a", Type: "Text2Text"},
		{ID: "am-img", Name: "b", Type: "文生图大模型"},
		{ID: "am-new", Name: "c", Type: "SomethingNew"},
	}}
	p, err := Evaluate(&r, snap, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, []row{
		{ID: "am-llm", Action: ActionKeep, Reason: "type LLM"},
		{ID: "am-img", Action: ActionDelete, Reason: `name matches "*"`},
		{ID: "am-new", Action: ActionKeep, Reason: `type "SomethingNew" not recognised, so kept on doubt`},
	}, p.Items)
}

func TestEvaluateLimit(t *testing.T) {
	t.Parallel()
	snap := &inventory.Snapshot{}
	for i := range 20 {
		snap.Models = append(snap.Models, inventory.Model{ID: "am-" + string(rune('a'+i)), Name: "tmp", Created: daysAgo(5)})
	}
	for _, tt := range []struct {
		limit, want string
	}{
		{"{count: 5, share: 100%}", "would delete 20 models, over the rule's limit of 5 (limit: count)"},
		{"{count: 100, share: 50%}", "would delete 20 of the 20 models considered (100.0%), over the rule's limit of 50% (limit: share)"},
		{"{share: 100%}", ""},
		{"{count: 1000}", "limit of 10% (limit: share)"}, // the default share
	} {
		r := parseRule(t, modelid.KindModel, "delete: {name: tmp}\nlimit: "+tt.limit)
		p, err := Evaluate(&r, snap, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		if (tt.want == "") != (p.Blocked == "") || !strings.Contains(p.Blocked, tt.want) {
			t.Errorf("limit %s: blocked %q, want %q", tt.limit, p.Blocked, tt.want)
		}
	}
}

func TestNeedsDetail(t *testing.T) {
	t.Parallel()
	m := func(name string, created int, versions int) *inventory.Model {
		mm := &inventory.Model{ID: "am-1", Name: name, Created: daysAgo(created)}
		for range versions {
			mm.Versions = append(mm.Versions, "amv")
		}
		return mm
	}
	for _, tt := range []struct {
		name, rule string
		model      *inventory.Model
		want       bool
	}{
		{"age and rank", `{delete: {name: "ci-*", older_than: 30d}, keep: {newest: 3}}`, m("ci-1", 100, 4), true},
		{"other name", `{delete: {name: "ci-*", older_than: 30d}, keep: {newest: 3}}`, m("prod-1", 100, 4), false},
		{"model younger than the age", `{delete: {name: "ci-*", older_than: 30d}}`, m("ci-1", 10, 4), false},
		{"no more versions than kept", `{delete: {name: "ci-*", older_than: 30d}, keep: {newest: 3}}`, m("ci-1", 100, 3), false},
		{"no more versions than spared", `{delete: {name: "ci-*", except_newest: 3}}`, m("ci-1", 100, 3), false},
		{"more versions than spared", `{delete: {name: "ci-*", except_newest: 3}}`, m("ci-1", 100, 4), true},
		{"kept whole", `{delete: {name: "ci-*", older_than: 30d}, keep: {name: "ci-1"}}`, m("ci-1", 100, 4), false},
		{"no version conditions", `{delete: {name: "ci-*"}}`, m("ci-1", 100, 4), false},
		{"keep by rank decides", `{delete: {name: "ci-*"}, keep: {newest: 1}}`, m("ci-1", 100, 4), true},
		{"no versions", `{delete: {name: "ci-*", older_than: 30d}}`, m("ci-1", 100, 0), false},
	} {
		r := parseRule(t, modelid.KindVersion, tt.rule)
		if got := NeedsDetail(&r, tt.model, now); got != tt.want {
			t.Errorf("%s: NeedsDetail = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFromYAMLProblems(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		kind      modelid.Kind
		src, want string
	}{
		{modelid.KindModel, "keep: {name: a}", "has no delete: selection"},
		{modelid.KindModel, "delete: {}", "an empty selection would match everything"},
		{modelid.KindModel, "delete: []", "delete is an empty list"},
		{modelid.KindModel, "delete: {nmae: a}", `delete: unknown field "nmae"`},
		{modelid.KindModel, "delete: {name: a, older_than: 30}", `older_than: bad age "30"`},
		{modelid.KindModel, "delete: {name: a, older_than: -3d}", `bad age "-3d"`},
		{modelid.KindModel, "delete: {name: a, newest: 3}", "they need kind: version"},
		{modelid.KindVersion, "delete: {name: a, newest: 0}", "newest must be a whole number of at least 1"},
		{modelid.KindVersion, "delete: {name: a, newest: 2, except_newest: 3}", "choose one"},
		{modelid.KindModel, "delete: {name_regex: 'a('}", "bad name_regex"},
		{modelid.KindModel, "delete: {type: llm2}", `unknown model type "llm2"`},
		{modelid.KindModel, "delete: {name: a}\nlimit: {share: 0.1}", "limit: share must be a percentage"},
		{modelid.KindModel, "delete: {name: a}\nlimit: {count: 0}", "limit: count must be a whole number"},
		{modelid.KindModel, "delete: {name: a}\nprotect_in_use: no", "protect_in_use must be true or false"},
		{modelid.KindModel, "delete: {name: a, name: b}", `field "name" given twice`},
	} {
		_, ps := parseRuleProblems(t, tt.kind, tt.src)
		var msgs []string
		for _, p := range ps {
			msgs = append(msgs, p.Msg)
		}
		if !strings.Contains(strings.Join(msgs, "\n"), tt.want) {
			t.Errorf("%q: problems %q, want one containing %q", tt.src, msgs, tt.want)
		}
	}
}

func TestParseAge(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute} {
		got, err := ParseAge(in)
		if err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "30", "0d", "-1h", "1y"} {
		if _, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q) accepted", in)
		}
	}
}

// TestRuleSurvivesJSON: a rule travels in task payloads as JSON and is
// compiled again on arrival.
func TestRuleSurvivesJSON(t *testing.T) {
	t.Parallel()
	r := parseRule(t, modelid.KindVersion, `
delete: {name: ["ci-*", "tmp-*"], type: LLM, older_than: 30d}
keep: [{newest: 3}, {name_regex: "ci-run-0+1"}]
protect_in_use: false
limit: {count: 5, share: 50%}
`)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Rule
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	snap, details := versionSnap()
	p1, err1 := Evaluate(&r, snap, details, now)
	p2, err2 := Evaluate(&back, snap, details, now)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if diff := cmp.Diff(p1, p2); diff != "" {
		t.Errorf("plans differ after a JSON round trip (-before +after)\n%s", diff)
	}
}

// TestEvaluateManyItemsKeepOrder plans more items than one chunk holds
// (itemChunk): the plan lists every one once, in listing order.
func TestEvaluateManyItemsKeepOrder(t *testing.T) {
	t.Parallel()
	r := parseRule(t, modelid.KindModel, "delete: {name: \"exp-*\"}\nkeep: {name: \"*-keep\"}\nlimit: {share: 100%}")
	snap := &inventory.Snapshot{Taken: now}
	var want []string
	for i := range 3*itemChunk + 5 {
		m := inventory.Model{ID: fmt.Sprintf("am-%06d", i), Name: fmt.Sprintf("exp-%d", i), Type: "LLM", Created: daysAgo(i % 400)}
		switch {
		case i%5 == 0:
			m.Name = fmt.Sprintf("other-%d", i)
		case i%3 == 0:
			m.Name += "-keep"
			want = append(want, m.ID+" keep")
		default:
			want = append(want, m.ID+" delete")
		}
		snap.Models = append(snap.Models, m)
	}
	p, err := Evaluate(&r, snap, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range p.Items {
		got = append(got, it.ID+" "+string(it.Action))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	if p.Totals.Matched != len(want) || p.Totals.Considered != len(snap.Models) {
		t.Errorf("totals %+v, want %d matched of %d", p.Totals, len(want), len(snap.Models))
	}
}
