package worker_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

// writeSchedule writes a schedule file with one rule entry for old tmp
// models.
func writeSchedule(t *testing.T, cron, limit string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	doc := `schedules:
  - name: old-experiments
    cron: "` + cron + `"
    kind: model
    delete: {name: "exp-*", older_than: 90d}
    keep: {name: "*-keep"}
    limit: ` + limit + "\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitRun waits for the run's record to reach an end.
func waitRun(t *testing.T, store *policy.Store, id string) policy.Record {
	t.Helper()
	var rec policy.Record
	workertest.Eventually(t, 20*time.Second, "run "+id+" to end", func() bool {
		var err error
		rec, err = store.Get(context.Background(), id)
		return err == nil && rec.Status != policy.StatusQueued && rec.Status != policy.StatusPlanning && rec.Status != policy.StatusEnqueuing
	})
	return rec
}

// checkRunDeleted waits until every deletion the run planned is deleted,
// by that run (or, with anyTick, by some scheduled run: a later tick may
// plan an ID again before the first run's batch deleted it), once at the
// fake.
func checkRunDeleted(t *testing.T, e *workertest.Env, store *policy.Store, rec policy.Record, anyTick bool) int {
	t.Helper()
	ctx := context.Background()
	items, _, err := store.Items(ctx, rec.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(e.RDB, ledger.Config{})
	var ids []modelid.ID
	for _, it := range items {
		if it.Action == policy.ActionDelete {
			ids = append(ids, modelid.StringID(it.ID))
		}
	}
	workertest.Eventually(t, 20*time.Second, "the run's deletions", func() bool {
		recs, err := l.LookupMany(ctx, rec.Kind, ids)
		if err != nil {
			return false
		}
		for _, r := range recs {
			if r.State != ledger.StateDeleted || (r.Run != rec.ID && !(anyTick && strings.HasSuffix(r.Run, "-tick"))) {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if n := e.Fake.DeleteCount(qianfantest.KindModel, id.String()); n != 1 {
			t.Errorf("%s deleted %d times", id, n)
		}
	}
	if n := e.Fake.Stats().InUseDeletes; n != 0 {
		t.Errorf("%d models deleted while a service used them", n)
	}
	return len(ids)
}

func ruleAccount() qianfantest.Config {
	return qianfantest.Config{Inventory: qianfantest.NewInventory(qianfantest.Generate{Models: 400, Versions: 2, Services: 20, Seed: 3}, time.Now())}
}

// TestScheduledRuleRun: a rule entry's tick is planned and run by the
// workers, its deletions checked and recorded under the tick's run.
func TestScheduledRuleRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: a few seconds")
	}
	t.Parallel()
	e := workertest.New(t, ruleAccount())
	path := writeSchedule(t, "@every 2s", "{count: 500, share: 50%}")
	e.Start(t, func(c *worker.Config) { c.Schedule = path })
	store := policy.NewStore(e.RDB, policy.StoreConfig{})
	var rec policy.Record
	workertest.Eventually(t, 20*time.Second, "a scheduled run to be enqueued", func() bool {
		runs, err := store.List(context.Background(), 10, time.Time{})
		if err != nil {
			return false
		}
		for _, r := range runs {
			if r.Trigger == "schedule" && r.Status == policy.StatusEnqueued {
				rec = r
				return true
			}
		}
		return false
	})
	if !strings.HasSuffix(rec.ID, "-old-experiments-tick") || rec.Tick.IsZero() || rec.Mode != policy.ModeRun {
		t.Errorf("scheduled run %+v", rec)
	}
	if n := checkRunDeleted(t, e, store, rec, true); n < 10 {
		t.Errorf("only %d deletions", n)
	}
}

// TestRuleAPI previews and runs a rule over the HTTP API: the preview shows
// the plan blocked by the limit, the run is blocked and deletes nothing,
// and the explicit override runs it.
func TestRuleAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: a few seconds")
	}
	t.Parallel()
	e := workertest.New(t, ruleAccount())
	path := writeSchedule(t, "0 3 1 1 *", "{count: 5}")
	w, _ := e.Start(t, func(c *worker.Config) {
		c.Schedule = path
		c.API = worker.APIConfig{Addr: "127.0.0.1:0", Tokens: []string{apiToken}}
	})
	c := apiClient{t: t, base: "http://" + w.APIAddr()}
	store := policy.NewStore(e.RDB, policy.StoreConfig{})
	submit := func(path, body string) policy.Record {
		t.Helper()
		code, hdr, b := c.call("POST", path, apiToken, body)
		var rec policy.Record
		if code != 202 || json.Unmarshal(b, &rec) != nil || hdr.Get("Location") != "/v1/runs/"+rec.ID {
			t.Fatalf("POST %s: %d %s", path, code, b)
		}
		return waitRun(t, store, rec.ID)
	}

	prev := submit("/v1/rules/old-experiments/preview", "")
	if prev.Status != policy.StatusPreviewed || prev.Blocked == "" || prev.Trigger != "api" {
		t.Fatalf("preview %+v", prev)
	}
	code, _, b := c.call("GET", "/v1/runs/"+prev.ID+"?limit=10000", apiToken, "")
	var d struct {
		Items []policy.ItemOutcome `json:"items"`
		Total int                  `json:"total_items"`
	}
	if code != 200 || json.Unmarshal(b, &d) != nil || d.Total != len(d.Items) || d.Total != prev.Totals.Matched {
		t.Fatalf("GET run: %d, %d of %d items, %d matched", code, len(d.Items), d.Total, prev.Totals.Matched)
	}

	blocked := submit("/v1/rules/old-experiments/run", "")
	if blocked.Status != policy.StatusBlocked || e.Fake.Stats().Deletes != 0 {
		t.Fatalf("run over the limit: %s, %d delete calls", blocked.Status, e.Fake.Stats().Deletes)
	}
	over := submit("/v1/rules/old-experiments/run", `{"override_limit": true}`)
	if over.Status != policy.StatusEnqueued || !over.OverrideLimit {
		t.Fatalf("overridden run %+v", over)
	}
	if n := checkRunDeleted(t, e, store, over, false); n != prev.Totals.Delete {
		t.Errorf("%d deleted, the preview planned %d", n, prev.Totals.Delete)
	}
	items, _, err := store.Items(context.Background(), over.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Action != policy.ActionDelete {
			continue
		}
		code, _, b := c.call("GET", "/v1/deletions/"+it.ID+"?kind=model", apiToken, "")
		var st struct{ State, Run string }
		if code != 200 || json.Unmarshal(b, &st) != nil || st.State != "deleted" || st.Run != over.ID {
			t.Errorf("GET /v1/deletions/%s: %d %s, want deleted by run %s", it.ID, code, b, over.ID)
		}
		break
	}
	if code, _, b := c.call("POST", "/v1/rules/nope/run", apiToken, ""); code != 404 {
		t.Errorf("unknown rule: %d %s", code, b)
	}
	code, _, b = c.call("GET", "/v1/runs", apiToken, "")
	var list struct{ Runs []policy.Record }
	if code != 200 || json.Unmarshal(b, &list) != nil || len(list.Runs) != 3 {
		t.Errorf("runs: %d %s", code, b)
	}
}
