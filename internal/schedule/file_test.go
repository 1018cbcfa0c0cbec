package schedule

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/robfig/cron/v3"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	doc := `# nightly purges
schedules:
  - name: nightly-models
    cron: "0 3 * * *"
    timezone: Asia/Shanghai
    kind: model
    ids: [585, "am-586", am-xyz]
  - name: weekly-versions
    cron: "CRON_TZ=Europe/Berlin 30 2 * * 1"
    kind: version
    file: versions.txt
    string: false
  - name: fast
    cron: "@every 1s"
    kind: model
    file: /abs/ids.json
`
	got, err := Parse([]byte(doc), "/etc/qfpurge/schedule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Name: "nightly-models", Cron: "0 3 * * *", Timezone: "Asia/Shanghai", Kind: modelid.KindModel,
			IDs: []modelid.ID{modelid.IntID(585), modelid.StringID("am-586"), modelid.StringID("am-xyz")}, Line: 3},
		{Name: "weekly-versions", Cron: "30 2 * * 1", Timezone: "Europe/Berlin", Kind: modelid.KindVersion,
			File: filepath.FromSlash("/etc/qfpurge/versions.txt"), Line: 8},
		{Name: "fast", Cron: "@every 1s", Kind: modelid.KindModel, File: "/abs/ids.json", Line: 13},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b modelid.ID) bool { return a == b })); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if s := got[0].Spec(); s != "CRON_TZ=Asia/Shanghai 0 3 * * *" {
		t.Errorf("Spec = %q", s)
	}
	if s := got[2].Spec(); s != "@every 1s" {
		t.Errorf("Spec = %q", s)
	}
}

func TestParseRuleEntries(t *testing.T) {
	t.Parallel()
	doc := `schedules:
  - name: ids
    cron: "@daily"
    kind: model
    ids: [1]
  - name: ci-leftovers
    cron: "0 4 * * *"
    kind: version
    delete:
      name: "ci-*"
      older_than: 30d
    keep:
      - newest: 3
    limit: {count: 500, share: 5%}
  - name: old-experiments
    cron: "@weekly"
    kind: model
    delete: [{name_regex: "exp-.*", older_than: 90d}]
    keep: {name: "*-keep"}
    protect_in_use: false
`
	got, err := Parse([]byte(doc), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Rule != nil {
		t.Error("an ids entry has a rule")
	}
	ci := got[1].Rule
	if ci == nil || ci.Name != "ci-leftovers" || ci.Kind != modelid.KindVersion || ci.Line != 6 ||
		ci.Delete[0].Names[0] != "ci-*" || ci.Delete[0].OlderThan != "30d" || ci.Delete[0].Line != 10 ||
		ci.Keep[0].Newest != 3 || ci.Limit.Count != 500 || ci.Limit.Share != 0.05 || ci.DeleteInUse {
		t.Errorf("ci rule %+v", ci)
	}
	exp := got[2].Rule
	if exp == nil || exp.Delete[0].NameRegex != "exp-.*" || exp.Keep[0].Names[0] != "*-keep" || !exp.DeleteInUse {
		t.Errorf("exp rule %+v", exp)
	}
	if got[1].IDs != nil || got[1].File != "" {
		t.Errorf("rule entry with IDs %v or file %q", got[1].IDs, got[1].File)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const head = "schedules:\n"
	tests := []struct {
		name string
		doc  string
		// want holds "line: substring" for every expected error.
		want []string
	}{
		{"unknown field", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    ids: [1]\n    crons: x\n",
			[]string{`6: unknown field "crons"`}},
		{"unknown top-level field", "schedule:\n  - name: a\n", []string{`1: unknown field "schedule"`}},
		{"bad cron", head + "  - name: a\n    cron: '61 * * * *'\n    kind: model\n    ids: [1]\n",
			[]string{`3: entry "a": bad cron "61 * * * *"`}},
		{"six fields", head + "  - name: a\n    cron: '0 0 3 * * *'\n    kind: model\n    ids: [1]\n",
			[]string{`3: entry "a": bad cron`}},
		{"never fires", head + "  - name: a\n    cron: '0 0 30 2 *'\n    kind: model\n    ids: [1]\n",
			[]string{`3: entry "a": bad cron "0 0 30 2 *": it never fires`}},
		{"bad timezone", head + "  - name: a\n    cron: '0 3 * * *'\n    timezone: Mars/Olympus\n    kind: model\n    ids: [1]\n",
			[]string{`4: entry "a": bad timezone "Mars/Olympus"`}},
		{"bad CRON_TZ", head + "  - name: a\n    cron: 'CRON_TZ=Nowhere 0 3 * * *'\n    kind: model\n    ids: [1]\n",
			[]string{`3: entry "a": bad timezone "Nowhere"`}},
		{"timezone twice", head + "  - name: a\n    cron: 'CRON_TZ=UTC 0 3 * * *'\n    timezone: Asia/Shanghai\n    kind: model\n    ids: [1]\n",
			[]string{`3: entry "a": time zone given twice`}},
		{"duplicate name", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    ids: [1]\n  - name: a\n    cron: '@daily'\n    kind: model\n    ids: [2]\n",
			[]string{`6: duplicate name "a" (first at line 2)`}},
		{"duplicate of an invalid entry", head + "  - name: a\n    cron: '@daily'\n    kind: modle\n    ids: [1]\n  - name: a\n    cron: '@daily'\n    kind: model\n    ids: [2]\n",
			[]string{`4: entry "a": bad kind "modle"`, `6: duplicate name "a" (first at line 2)`}},
		{"bad kind", head + "  - name: a\n    cron: '@daily'\n    kind: models\n    ids: [1]\n",
			[]string{`4: entry "a": bad kind "models"`}},
		{"no kind", head + "  - name: a\n    cron: '@daily'\n    ids: [1]\n",
			[]string{`2: entry "a" has no kind`}},
		{"no ids no file", head + "  - name: a\n    cron: '@daily'\n    kind: model\n",
			[]string{`2: entry "a" has no ids, file or delete rule`}},
		{"both ids and file", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    ids: [1]\n    file: x.txt\n",
			[]string{`6: entry "a" has both ids and file`}},
		{"invalid inline IDs", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    ids:\n      - 1\n      - -5\n      - 1.5\n      - true\n      - \"am x\"\n      - 0x10\n",
			[]string{`7: entry "a": invalid inline ID "-5": int IDs are positive`,
				`8: entry "a": invalid inline ID "1.5": not a whole number`,
				`9: entry "a": invalid inline ID "true"`,
				`10: entry "a": invalid inline ID "am x"`,
				`11: entry "a": invalid inline ID "0x10"`}},
		{"IDs that are not Qianfan's", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    ids:\n      - \"585\"\n      - s-1\n      - \"\\ufeff12\"\n      - amv-1\n      - 585,\n",
			[]string{`6: entry "a": invalid inline ID "585": a quoted number is not an ID`,
				`7: entry "a": invalid inline ID "s-1": not an ID`,
				`8: entry "a": invalid inline ID "\ufeff12": holds a byte-order mark`,
				`9: entry "a": invalid inline ID "amv-1": ID of the other kind: an amv- ID names a model version`,
				`10: entry "a": invalid inline ID "585,": stray ","`}},
		{"empty ids", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    ids: []\n",
			[]string{`5: entry "a": ids is empty`}},
		{"bad name", head + "  - name: 'a b'\n    cron: '@daily'\n    kind: model\n    ids: [1]\n",
			[]string{`2: bad name "a b"`}},
		{"no name", head + "  - cron: '@daily'\n    kind: model\n    ids: [1]\n", []string{`2: entry has no name`}},
		{"string: true", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    file: x.txt\n    string: true\n",
			[]string{`6: entry "a": string: is no longer used`}},
		{"rule and ids", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    ids: [1]\n    delete: {name: x}\n",
			[]string{`6: entry "a" has both a delete rule and fixed IDs`}},
		{"keep without a rule", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    ids: [1]\n    keep: {name: x}\n    limit: {count: 3}\n",
			[]string{`6: entry "a": keep only applies to a rule entry`, `7: entry "a": limit only applies to a rule entry`}},
		{"rule problems", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    delete:\n      - name: 'ci-*'\n        older_than: 30\n      - newest: 3\n    keep: {}\n",
			[]string{`6: rule "a": delete #1: older_than: bad age "30"`,
				`8: rule "a": delete #2: newest and except_newest rank a model's versions`,
				`9: rule "a": keep #1: an empty selection would match everything`}},
		{"unquoted glob", head + "  - name: a\n    cron: '@daily'\n    kind: model\n    delete: {name: *-keep}\n",
			[]string{`5: unknown anchor '-keep' referenced: quote a name pattern that starts with *, e.g. name: "*-keep"`}},
		{"yaml syntax", head + "  - name: a\n    cron: [\n", []string{`3: did not find expected node content`}},
		{"empty", "", []string{`1: the file is empty`}},
		{"not a list", "schedules: 3\n", []string{`1: schedules must be a list`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.doc), "s.yaml")
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not a *LineError", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], "s.yaml:") || !strings.Contains(lines[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestTick(t *testing.T) {
	t.Parallel()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name, spec string
		ref        time.Time
		wantTick   time.Time
		wantPeriod time.Duration
	}{
		{"on time", "CRON_TZ=Asia/Shanghai 0 3 * * *", time.Date(2026, 3, 10, 3, 0, 0, 2e6, sh), time.Date(2026, 3, 10, 3, 0, 0, 0, sh), 24 * time.Hour},
		{"late handler", "CRON_TZ=Asia/Shanghai 0 3 * * *", time.Date(2026, 3, 10, 9, 30, 0, 0, sh), time.Date(2026, 3, 10, 3, 0, 0, 0, sh), 24 * time.Hour},
		{"fast clock", "CRON_TZ=Asia/Shanghai 0 3 * * *", time.Date(2026, 3, 10, 2, 59, 57, 0, sh), time.Date(2026, 3, 10, 3, 0, 0, 0, sh), 24 * time.Hour},
		{"too early", "CRON_TZ=Asia/Shanghai 0 3 * * *", time.Date(2026, 3, 10, 2, 59, 40, 0, sh), time.Date(2026, 3, 9, 3, 0, 0, 0, sh), 24 * time.Hour},
		{"every minute, fast clock", "CRON_TZ=UTC * * * * *", at("2026-03-10T10:00:59.5Z"), at("2026-03-10T10:01:00Z"), time.Minute},
		{"every minute", "CRON_TZ=UTC * * * * *", at("2026-03-10T10:00:20Z"), at("2026-03-10T10:00:00Z"), time.Minute},
		{"every second, late", "@every 1s", at("2026-03-10T10:00:00.004Z"), at("2026-03-10T10:00:00Z"), time.Second},
		{"every second, early", "@every 1s", at("2026-03-10T09:59:59.7Z"), at("2026-03-10T10:00:00Z"), time.Second},
		{"every hour, epoch aligned", "@every 1h", at("2026-03-10T10:17:00Z"), at("2026-03-10T10:00:00Z"), time.Hour},
		{"yearly", "CRON_TZ=UTC 0 0 1 1 *", at("2026-12-31T23:00:00Z"), at("2026-01-01T00:00:00Z"), 365 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := cron.ParseStandard(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			tick, period := Tick(s, tt.ref)
			if !tick.Equal(tt.wantTick) || period != tt.wantPeriod {
				t.Errorf("Tick(%q, %s) = %s, %s; want %s, %s", tt.spec, tt.ref, tick, period, tt.wantTick, tt.wantPeriod)
			}
		})
	}
}

// TestExampleLoads keeps examples/schedule.yaml valid under the rules.
func TestExampleLoads(t *testing.T) {
	t.Parallel()
	if _, err := Load(filepath.FromSlash("../../examples/schedule.yaml")); err != nil {
		t.Fatal(err)
	}
}
