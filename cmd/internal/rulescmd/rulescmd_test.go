package rulescmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/schedule"
)

func TestMain(m *testing.M) {
	// bce-sdk-go's logger starts its writer goroutine in an init func.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// rig is a real Redis and the fake Qianfan holding an account.
type rig struct {
	env  map[string]string
	fake *qianfantest.Server
}

func newRig(t *testing.T, schedulePath string) rig {
	t.Helper()
	srv := redistest.Start(t)
	fake := qianfantest.New(qianfantest.Config{Inventory: qianfantest.NewInventory(
		qianfantest.Generate{Models: 300, Versions: 4, Services: 10, Seed: 5}, time.Now())})
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	return rig{fake: fake, env: map[string]string{
		"REDIS_URL": srv.URL(), "QFPURGE_SCHEDULE": schedulePath, "QIANFAN_BASE_URL": hs.URL,
		"QIANFAN_ACCESS_KEY": qianfantest.DefaultAccessKey, "QIANFAN_SECRET_KEY": qianfantest.DefaultSecretKey,
	}}
}

func (r rig) rules(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"--qps", "0"}, args...), func(k string) string { return r.env[k] }, &out, &errb)
	return out.String(), err
}

func writeSchedule(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "schedule.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func exitStatus(err error) int { return cli.Status("rules", err, &bytes.Buffer{}) }

func TestCommands(t *testing.T) {
	t.Parallel()
	path := writeSchedule(t, `schedules:
  - name: fixed
    cron: "@daily"
    kind: model
    ids: [1]
  - name: old-experiments
    cron: "@weekly"
    kind: model
    delete: {name: "exp-*", older_than: 30d}
    keep: {name: "*-keep"}
    limit: {count: 5}
`)
	r := newRig(t, path)

	out, err := r.rules(t, "list")
	if err != nil || !strings.Contains(out, "old-experiments") || strings.Contains(out, "fixed") || !strings.Contains(out, "count 5, share 10%") {
		t.Fatalf("list: %v\n%s", err, out)
	}

	out, err = r.rules(t, "preview", "old-experiments")
	if err != nil {
		t.Fatalf("preview: %v\n%s", err, out)
	}
	for _, want := range []string{`preview of rule "old-experiments" (models)`, "previewed", "BLOCKED: would delete",
		"over the rule's limit of 5 (limit: count)", "ACTION", `delete #1 (line 9): name matches "exp-*"`} {
		if !strings.Contains(out, want) {
			t.Errorf("preview output lacks %q:\n%s", want, out)
		}
	}
	out, err = r.rules(t, "preview", "--json", "old-experiments")
	var pj struct {
		Run  policy.Record
		Plan policy.Plan
	}
	if err != nil || json.Unmarshal([]byte(out), &pj) != nil || pj.Run.Status != policy.StatusPreviewed || len(pj.Plan.Items) != pj.Plan.Totals.Matched {
		t.Fatalf("preview --json: %v\n%.500s", err, out)
	}

	out, err = r.rules(t, "run", "old-experiments")
	if exitStatus(err) != 1 || !strings.Contains(err.Error(), "blocked") || !strings.Contains(out, "BLOCKED") {
		t.Errorf("run over the limit: status %d, %v\n%.300s", exitStatus(err), err, out)
	}
	if st := r.fake.Stats(); st.Deletes != 0 {
		t.Fatal("something was deleted")
	}
	out, err = r.rules(t, "run", "old-experiments", "--override-limit", "--json", "--summary")
	var rj struct {
		Run  policy.Record
		Plan policy.Plan
	}
	if err != nil || json.Unmarshal([]byte(out), &rj) != nil || rj.Run.Status != policy.StatusEnqueued || !rj.Run.OverrideLimit ||
		rj.Plan.Items != nil || rj.Run.Batches == 0 || !strings.Contains(rj.Run.By, "@") || rj.Run.Trigger != "cli" {
		t.Fatalf("run --override-limit: %v\n%s", err, out)
	}

	out, err = r.rules(t, "runs")
	if err != nil || strings.Count(out, " old-experiments ") != 4 || !strings.Contains(out, "over the limit, overridden") {
		t.Errorf("runs: %v\n%s", err, out)
	}
	out, err = r.rules(t, "runs", "show", rj.Run.ID, "--limit", "3")
	if err != nil || !strings.Contains(out, "items 1 to 3 of") || !strings.Contains(out, "OUTCOME") || !strings.Contains(out, "(none yet)") {
		t.Errorf("runs show: %v\n%s", err, out)
	}
	out, err = r.rules(t, "runs", "show", rj.Run.ID, "--json")
	var sj struct {
		Run   policy.Record
		Items []policy.ItemOutcome
		Total int `json:"total_items"`
	}
	if err != nil || json.Unmarshal([]byte(out), &sj) != nil || sj.Total != len(sj.Items) || sj.Run.ID != rj.Run.ID {
		t.Errorf("runs show --json: %v\n%.300s", err, out)
	}
	if _, err := r.rules(t, "runs", "show", "no-such-run"); !errors.Is(err, policy.ErrNoRun) {
		t.Errorf("unknown run: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	good := writeSchedule(t, "schedules:\n  - name: r\n    cron: '@daily'\n    kind: model\n    delete: {name: 'tmp-*'}\n")
	bad := writeSchedule(t, "schedules:\n  - name: r\n    cron: '@daily'\n    kind: model\n    delete: {name: 'tmp-*', older_than: 3}\n")
	env := map[string]string{"QFPURGE_SCHEDULE": good}
	rules := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &out)
		return out.String(), err
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"preview"}, "preview takes one rule name"},
		{[]string{"preview", "nope"}, `no rule entry named "nope"`},
		{[]string{"preview", "r"}, "set QIANFAN_READ_ACCESS_KEY and QIANFAN_READ_SECRET_KEY (a read-only pair is enough), or QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY"},
		{[]string{"--schedule", bad, "list"}, `:5: rule "r": delete #1: older_than: bad age "3"`},
		{[]string{"--schedule", "", "list"}, "no schedule file"},
		{[]string{"runs", "show", "../x"}, "bad run ID"},
		{[]string{"run", "r", "--overide-limit"}, "unknown flag --overide-limit; did you mean --override-limit?"},
	} {
		out, err := rules(tt.args...)
		if exitStatus(err) != 2 || !strings.Contains(err.Error()+out, tt.want) {
			t.Errorf("rules %q: status %d, %v; want 2 and %q", tt.args, exitStatus(err), err, tt.want)
		}
	}
	if _, err := rules("-h"); exitStatus(err) != 0 {
		t.Errorf("-h: %v", err)
	}
}

// TestDocExamples loads every YAML example of docs/rules.md, and those
// holding a rule in the README and docs/schedule.md, and examples/rules.yaml
// as schedule files, and previews each rule in them.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	var docs []string
	for _, f := range []string{"docs/rules.md", "README.md", "docs/schedule.md"} {
		raw, err := os.ReadFile("../../../" + f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(raw), -1) {
			if f == "docs/rules.md" || strings.Contains(m[1], "delete:") {
				docs = append(docs, m[1])
			}
		}
	}
	file, err := os.ReadFile("../../../examples/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, string(file))
	if len(docs) < 8 {
		t.Fatalf("found %d examples", len(docs))
	}
	r := newRig(t, "")
	previewed := 0
	for i, doc := range docs {
		path := writeSchedule(t, doc)
		entries, err := schedule.Load(path)
		if err != nil {
			t.Errorf("example %d does not load: %v\n%s", i+1, err, doc)
			continue
		}
		for _, e := range entries {
			if e.Rule == nil {
				t.Errorf("example %d: entry %s is not a rule", i+1, e.Name)
				continue
			}
			out, err := r.rules(t, "--schedule", path, "preview", e.Name, "--json", "--summary")
			var pj struct{ Run policy.Record }
			if err != nil || json.Unmarshal([]byte(out), &pj) != nil || pj.Run.Status != policy.StatusPreviewed {
				t.Errorf("example %d, rule %s: %v\n%s", i+1, e.Name, err, out)
				continue
			}
			previewed++
		}
	}
	t.Logf("%d examples, %d rules previewed", len(docs), previewed)
}

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(0, 0)
	p := newProgress(&buf, func() time.Time { return clock })
	p(0, 100)
	for i := 1; i <= 100; i++ {
		clock = clock.Add(time.Second) // 100 s in all: lines at 30, 60 and 90 s
		p(i, 100)
	}
	want := "reading version details: 0 of 100 models\n" +
		"reading version details: 30 of 100 models\n" +
		"reading version details: 60 of 100 models\n" +
		"reading version details: 90 of 100 models\n" +
		"reading version details: 100 of 100 models\n"
	if buf.String() != want {
		t.Errorf("progress lines:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	p(0, 0) // a rule that needs no details says nothing
	if buf.Len() != 0 {
		t.Errorf("no details, yet: %q", buf.String())
	}
}

// run is the command as qfpurge runs it, with the given environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return cli.RunIO(ctx, New(getenv), args, nil, stdout, stderr)
}

// TestReadPairIsEnough: with only a read-only pair in the environment,
// rules preview and rules run work, every call is signed by that pair, and
// none of them deletes.
func TestReadPairIsEnough(t *testing.T) {
	t.Parallel()
	path := writeSchedule(t, "schedules:\n  - name: exp\n    cron: '@daily'\n    kind: model\n    delete: {name: 'exp-*'}\n    limit: {share: 100%}\n")
	srv := redistest.Start(t)
	fake := qianfantest.New(qianfantest.Config{
		Inventory:   qianfantest.NewInventory(qianfantest.Generate{Models: 50, Versions: 2, Services: 3, Seed: 6}, time.Now()),
		Credentials: map[string]string{qianfantest.DefaultAccessKey: qianfantest.DefaultSecretKey, "read-ak": "read-sk"},
		Permissions: map[string]qianfantest.Permission{"read-ak": qianfantest.PermRead},
	})
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	r := rig{fake: fake, env: map[string]string{
		"REDIS_URL": srv.URL(), "QFPURGE_SCHEDULE": path, "QIANFAN_BASE_URL": hs.URL,
		"QIANFAN_READ_ACCESS_KEY": "read-ak", "QIANFAN_READ_SECRET_KEY": "read-sk",
	}}
	for _, cmd := range []string{"preview", "run"} {
		if out, err := r.rules(t, cmd, "exp"); err != nil || (cmd == "run" && !strings.Contains(out, "enqueued")) {
			t.Fatalf("%s with the read pair only: %v\n%s", cmd, err, out)
		}
	}
	st := fake.Stats()
	if k := st.Keys["read-ak"]; k.Reads == 0 || k.Deletes != 0 || k.Denied != 0 {
		t.Errorf("read pair: %+v, want reads only", k)
	}
	if k, ok := st.Keys[qianfantest.DefaultAccessKey]; ok || st.Deletes != 0 {
		t.Errorf("full key: %+v; deletes %d", k, st.Deletes)
	}
}
