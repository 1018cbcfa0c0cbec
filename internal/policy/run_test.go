package policy_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/policy/policytest"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

func TestMain(m *testing.M) {
	// bce-sdk-go's logger starts its writer goroutine in an init func.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// rule reads a rule entry's fields from YAML.
func rule(t testing.TB, name string, kind modelid.Kind, src string) policy.Rule {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	fields := map[string]*yaml.Node{}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		fields[root.Content[i].Value] = root.Content[i+1]
	}
	r, ps := policy.FromYAML(name, kind, 1, fields)
	if len(ps) > 0 {
		t.Fatalf("rule %s: %v", name, ps)
	}
	return r
}

const (
	ciRule = `
delete: {name: "ci-*", older_than: 30d}
keep: {newest: 3}
limit: {count: 5000, share: 50%}
`
	expRule = `
delete: {name: "exp-*", older_than: 90d}
keep: {name: "*-keep"}
limit: {count: 5000, share: 50%}
`
)

// bundle is a real Redis, the fake Qianfan holding an account, and a
// Runner reading it.
type bundle struct {
	env    *workertest.Env
	runner *policy.Runner
	ledger *ledger.Ledger
	obs    *observer
}

type observer struct {
	mu   sync.Mutex
	ends []policy.Record
}

func (o *observer) RunEnded(r policy.Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ends = append(o.ends, r)
}

func setup(t *testing.T, inv *qianfantest.Inventory, opts ...qianfan.Option) bundle {
	t.Helper()
	e := workertest.New(t, qianfantest.Config{Inventory: inv})
	qc, err := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
		append([]qianfan.Option{qianfan.WithBaseURL(e.URL), qianfan.WithRetryInterval(time.Millisecond, 10*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := enqueue.New(e.RDB, enqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	obs := &observer{}
	log := &workertest.Log{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runner log:\n%s", log.String())
		}
	})
	r := policy.NewRunner(e.RDB, policy.QianfanSource(qc), prod, policy.Config{Observer: obs, Logger: log.Logger(), Concurrency: 8})
	return bundle{env: e, runner: r, ledger: ledger.New(e.RDB, ledger.Config{}), obs: obs}
}

func account(models, versions, services int) *qianfantest.Inventory {
	return policytest.Account(models, versions, services, 7)
}

func deletions(p *policy.Plan) []string {
	var out []string
	for _, id := range p.Deletions() {
		out = append(out, id.String())
	}
	slices.Sort(out)
	return out
}

// queued is the number of tasks in the queue, 0 before it exists.
func (b bundle) queued(t *testing.T) int {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(b.env.RDB)
	qs, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(qs, asynqlayout.Queue) {
		return 0
	}
	q, err := insp.GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	return q.Size
}

// waitOutcomes waits until every ID has a final ledger state and the queue
// is drained.
func (b bundle) waitOutcomes(t *testing.T, k modelid.Kind, ids []string) []ledger.Record {
	t.Helper()
	mids := make([]modelid.ID, len(ids))
	for i, id := range ids {
		mids[i] = modelid.StringID(id)
	}
	var recs []ledger.Record
	workertest.Eventually(t, 60*time.Second, "every planned deletion to have an outcome", func() bool {
		var err error
		if recs, err = b.ledger.LookupMany(context.Background(), k, mids); err != nil {
			return false
		}
		for _, r := range recs {
			if !r.State.Final() {
				return false
			}
		}
		return b.env.Drained()
	})
	return recs
}

// TestRulesAcceptance is the acceptance on 5,000 models × 4
// versions and 50 services: the preview lists exactly what a brute-force
// computation over the fake's inventory gives, none used by a service; the
// run deletes exactly those (checked at the fake), and its record matches.
func TestRulesAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end over 20,000 versions: a few seconds")
	}
	for _, tt := range []struct {
		name  string
		kind  modelid.Kind
		rule  string
		brute func(*qianfantest.Inventory, time.Time) []string
		fake  string
	}{
		{"ci-versions", modelid.KindVersion, ciRule, policytest.CIVersions, qianfantest.KindVersion},
		{"old-experiments", modelid.KindModel, expRule, policytest.ExpModels, qianfantest.KindModel},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := account(5000, 4, 50)
			b := setup(t, inv)
			ctx := context.Background()
			r := rule(t, tt.name, tt.kind, tt.rule)

			prev, plan, err := b.runner.Execute(ctx, r, policy.Options{Mode: policy.ModePreview, Trigger: "test"})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.brute(inv, plan.At)
			if len(want) < 100 {
				t.Fatalf("only %d deletions expected: the account does not exercise the rule", len(want))
			}
			if diff := cmp.Diff(want, deletions(plan)); diff != "" {
				t.Fatalf("preview deletions differ from brute force (-want +got)\n%s", diff)
			}
			checkNotUsed(t, inv, plan)
			if prev.Status != policy.StatusPreviewed || prev.Totals.Delete != len(want) {
				t.Errorf("preview record %s with %d deletions", prev.Status, prev.Totals.Delete)
			}
			if b.env.Fake.Stats().Deletes != 0 || b.queued(t) != 0 {
				t.Fatal("a preview deleted or enqueued something")
			}
			// Pages of 100 models; one page each of services of protocol
			// versions 1 and 2 and of batch inference tasks; details.
			wantCalls := 50 + 3 + plan.Totals.DetailCalls
			if got := b.env.Fake.Stats().Reads; got != wantCalls {
				t.Errorf("preview made %d read calls, want %d", got, wantCalls)
			}

			run, plan2, err := b.runner.Execute(ctx, r, policy.Options{Mode: policy.ModeRun, Trigger: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, deletions(plan2)); diff != "" {
				t.Fatalf("run's plan differs from the preview's (-want +got)\n%s", diff)
			}
			if run.Status != policy.StatusEnqueued || run.Batches != (len(want)+99)/100 {
				t.Errorf("run %s with %d batches", run.Status, run.Batches)
			}
			b.env.Start(t)
			recs := b.waitOutcomes(t, tt.kind, want)
			for _, rec := range recs {
				if rec.State != ledger.StateDeleted || rec.Run != run.ID {
					t.Errorf("%s: ledger %s run %q, want deleted by %s", rec.ID, rec.State, rec.Run, run.ID)
				}
			}
			for _, id := range want {
				if n := b.env.Fake.DeleteCount(tt.fake, id); n != 1 {
					t.Errorf("%s deleted %d times at the fake", id, n)
				}
			}
			st := b.env.Fake.Stats()
			if st.IDsDeleted != len(want) || st.InUseDeletes != 0 {
				t.Errorf("fake deleted %d IDs (%d in use), want %d", st.IDsDeleted, st.InUseDeletes, len(want))
			}

			// The record matches: every planned ID with its reason, and
			// each deletion's outcome traced back to the run.
			got, err := b.runner.Store().Get(ctx, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != policy.StatusEnqueued || got.Totals != plan2.Totals || got.Spec.Name != tt.name {
				t.Errorf("record %+v", got)
			}
			items, n, err := b.runner.Store().Items(ctx, run.ID, 0, 0)
			if err != nil || n != len(plan2.Items) {
				t.Fatalf("%d items recorded (%v), plan has %d", n, err, len(plan2.Items))
			}
			if diff := cmp.Diff(plan2.Items, items); diff != "" {
				t.Errorf("recorded items differ from the plan (-plan +record)\n%s", diff)
			}
			outs, err := policy.Outcomes(ctx, b.ledger, tt.kind, items)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range outs {
				if o.Action == policy.ActionDelete && (o.Outcome == nil || o.Outcome.State != ledger.StateDeleted || o.Outcome.Run != run.ID) {
					t.Errorf("%s: outcome %+v", o.ID, o.Outcome)
				}
				if o.Reason == "" {
					t.Errorf("%s: no reason", o.ID)
				}
			}
			runs, err := b.runner.Store().List(ctx, 10, time.Time{})
			if err != nil || len(runs) != 2 || runs[0].ID != run.ID || runs[1].ID != prev.ID {
				t.Errorf("runs listed %v (%v), want the run then the preview", runs, err)
			}
		})
	}
}

// checkNotUsed fails for any planned deletion a service of inv uses.
func checkNotUsed(t *testing.T, inv *qianfantest.Inventory, p *policy.Plan) {
	t.Helper()
	used := map[string]string{}
	for _, s := range inv.Services {
		used[s.Version] = s.Name
		if p.Kind == modelid.KindModel {
			used[s.Model] = s.Name
		}
	}
	protected := 0
	for _, it := range p.Items {
		switch it.Action {
		case policy.ActionDelete:
			if svc, ok := used[it.ID]; ok {
				t.Errorf("%s planned for deletion but used by %s", it.ID, svc)
			}
		case policy.ActionProtect:
			protected++
			if len(it.Services) == 0 {
				t.Errorf("%s protected without a service named", it.ID)
			}
		}
	}
	if protected == 0 {
		t.Error("no item protected: the account does not exercise protection")
	}
}

// TestDeployedAfterThePlanIsNotDeleted: versions a service starts to use
// between the plan and the deletion call are skipped by the workers'
// check, recorded protected with the service, and not deleted.
func TestDeployedAfterThePlanIsNotDeleted(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	t.Parallel()
	inv := account(400, 4, 5)
	b := setup(t, inv)
	ctx := context.Background()
	run, plan, err := b.runner.Execute(ctx, rule(t, "ci", modelid.KindVersion, ciRule), policy.Options{Mode: policy.ModeRun, Trigger: "test"})
	if err != nil || run.Status != policy.StatusEnqueued {
		t.Fatalf("run %s: %v", run.Status, err)
	}
	ids := deletions(plan)
	if len(ids) < 10 {
		t.Fatalf("only %d deletions planned", len(ids))
	}
	moved, added := ids[3], ids[7]
	svc := inv.Services[0]
	if err := b.env.Fake.SetServiceVersion(svc.IDStr, moved); err != nil {
		t.Fatal(err)
	}
	var addedModel string
	for _, it := range plan.Items {
		if it.ID == added {
			addedModel = it.Model
		}
	}
	if err := b.env.Fake.AddService(qianfantest.Service{ID: 9001, IDStr: "svco-late", Name: "svc-late", Status: "Deploying",
		Model: addedModel, Version: added}); err != nil {
		t.Fatal(err)
	}
	b.env.Start(t)
	recs := b.waitOutcomes(t, modelid.KindVersion, ids)
	for _, rec := range recs {
		id := rec.ID.String()
		switch id {
		case moved, added:
			if rec.State != ledger.StateProtected || rec.Run != run.ID || !strings.Contains(rec.Message, "in use by service") {
				t.Errorf("%s: %s %q, want protected naming the service", id, rec.State, rec.Message)
			}
			if !b.env.Fake.Exists(qianfantest.KindVersion, id) {
				t.Errorf("%s was deleted although a service used it", id)
			}
		default:
			if rec.State != ledger.StateDeleted {
				t.Errorf("%s: %s, want deleted", id, rec.State)
			}
		}
	}
	if st := b.env.Fake.Stats(); st.InUseDeletes != 0 || st.IDsDeleted != len(ids)-2 {
		t.Errorf("fake: %d deleted, %d in use; want %d and 0", st.IDsDeleted, st.InUseDeletes, len(ids)-2)
	}
}

// TestOverLimitIsBlockedUnlessOverridden: a plan over the rule's limit
// enqueues nothing, says so in its record, an event and the observer; the
// explicit override runs it.
func TestOverLimitIsBlockedUnlessOverridden(t *testing.T) {
	t.Parallel()
	b := setup(t, account(200, 4, 5))
	ctx := context.Background()
	r := rule(t, "ci", modelid.KindVersion, `
delete: {name: "ci-*", older_than: 30d}
keep: {newest: 3}
limit: {count: 5}
`)
	rec, plan, err := b.runner.Execute(ctx, r, policy.Options{Mode: policy.ModeRun, Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != policy.StatusBlocked || !strings.Contains(rec.Blocked, "over the rule's limit of 5 (limit: count)") || plan.Totals.Delete <= 5 {
		t.Fatalf("record %s %q with %d deletions, want blocked by count", rec.Status, rec.Blocked, plan.Totals.Delete)
	}
	if n := b.queued(t); n != 0 {
		t.Fatalf("a blocked run enqueued %d tasks", n)
	}
	evs, err := b.env.RDB.XRange(ctx, policy.RunsStream, "-", "+").Result()
	if err != nil || len(evs) != 1 || evs[0].Values["status"] != "blocked" || evs[0].Values["run"] != rec.ID {
		t.Errorf("events %v (%v), want one blocked event", evs, err)
	}
	prev, _, err := b.runner.Execute(ctx, r, policy.Options{Mode: policy.ModePreview, Trigger: "test"})
	if err != nil || prev.Status != policy.StatusPreviewed || prev.Blocked == "" {
		t.Errorf("preview %s blocked %q (%v): want it to show the block", prev.Status, prev.Blocked, err)
	}

	over, plan, err := b.runner.Execute(ctx, r, policy.Options{Mode: policy.ModeRun, Trigger: "test", OverrideLimit: true})
	if err != nil {
		t.Fatal(err)
	}
	if over.Status != policy.StatusEnqueued || !over.OverrideLimit || over.Blocked == "" || over.Batches == 0 {
		t.Errorf("overridden run %+v", over)
	}
	if n := b.queued(t); n != over.Batches {
		t.Errorf("queue holds %d tasks, want the run's %d batches", n, over.Batches)
	}
	var statuses []policy.Status
	for _, e := range b.obs.ends {
		statuses = append(statuses, e.Status)
	}
	if diff := cmp.Diff([]policy.Status{policy.StatusBlocked, policy.StatusPreviewed, policy.StatusEnqueued}, statuses); diff != "" {
		t.Errorf("observed ends (-want +got)\n%s", diff)
	}
	if _, _, err := b.runner.Execute(ctx, r, policy.Options{Mode: policy.ModeRun, Trigger: "schedule", OverrideLimit: true}); err == nil {
		t.Error("a scheduled run overrode its limit")
	}
	_ = plan
}

// TestListingFailingPartWayDeletesNothing: a listing that fails after some
// pages fails the plan; the run enqueues nothing and says why.
func TestListingFailingPartWayDeletesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, account(2000, 4, 5), qianfan.WithMaxElapsed(0)) // no retries inside a call
	b.env.Fake.SetFaults(qianfantest.Faults{Rate503: 0.1, Seed: 3})
	ctx := context.Background()
	rec, plan, err := b.runner.Execute(ctx, rule(t, "exp", modelid.KindModel, expRule), policy.Options{Mode: policy.ModeRun, Trigger: "test"})
	if err == nil || plan != nil {
		t.Fatalf("plan over a failing listing: err %v", err)
	}
	st := b.env.Fake.Stats()
	if st.Calls[qianfantest.OutcomeOK] == 0 || st.Calls[qianfantest.Outcome503] == 0 {
		t.Fatalf("fake answered %v: want some pages served before a 503", st.Calls)
	}
	if rec.Status != policy.StatusFailed || !strings.Contains(rec.Error, "nothing deleted: read the inventory") {
		t.Errorf("record %s %q", rec.Status, rec.Error)
	}
	if b.queued(t) != 0 || st.Deletes != 0 {
		t.Error("a failed plan enqueued or deleted something")
	}
	got, err := b.runner.Store().Get(ctx, rec.ID)
	if err != nil || got.Status != policy.StatusFailed {
		t.Errorf("stored %s (%v)", got.Status, err)
	}
	if n, _ := b.env.RDB.XLen(ctx, policy.RunsStream).Result(); n != 1 {
		t.Errorf("%d run events, want 1", n)
	}
}

// TestRetriedRunResumesItsEnqueue: a run that recorded its plan but could
// not finish enqueuing enqueues exactly the recorded plan when retried.
func TestRetriedRunResumesItsEnqueue(t *testing.T) {
	t.Parallel()
	b := setup(t, account(400, 4, 5))
	ctx := context.Background()
	fail := &failingEnqueuer{}
	qc, _ := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey}, qianfan.WithBaseURL(b.env.URL))
	r := policy.NewRunner(b.env.RDB, policy.QianfanSource(qc), fail, policy.Config{Logger: (&workertest.Log{}).Logger()})
	ru := rule(t, "ci", modelid.KindVersion, ciRule)
	rec, plan, err := r.Execute(ctx, ru, policy.Options{ID: "run-1", Mode: policy.ModeRun, Trigger: "test"})
	if err == nil || rec.Status != policy.StatusEnqueuing {
		t.Fatalf("first attempt %s: %v", rec.Status, err)
	}
	fail.ok = true
	rec, _, err = r.Execute(ctx, ru, policy.Options{ID: "run-1", Mode: policy.ModeRun, Trigger: "test"})
	if err != nil || rec.Status != policy.StatusEnqueued || rec.Attempts != 2 {
		t.Fatalf("retry %s, attempts %d: %v", rec.Status, rec.Attempts, err)
	}
	var got []string
	for _, id := range fail.req.IDs {
		got = append(got, id.String())
	}
	slices.Sort(got)
	if diff := cmp.Diff(deletions(plan), got); diff != "" || fail.req.Run != "run-1" || fail.req.Key != "run:run-1" {
		t.Errorf("resumed enqueue %q/%q differs from the recorded plan (-plan +enqueued)\n%s", fail.req.Run, fail.req.Key, diff)
	}
	// 4 pages of models, services of protocol versions 1 and 2, batch tasks.
	if b.env.Fake.Stats().Reads != 4+3+plan.Totals.DetailCalls {
		t.Error("the retry planned again instead of resuming")
	}
	// Settled runs are not redone.
	again, _, err := r.Execute(ctx, ru, policy.Options{ID: "run-1", Mode: policy.ModeRun, Trigger: "test"})
	if err != nil || again.Attempts != 2 {
		t.Errorf("a settled run was executed again: %+v %v", again, err)
	}
}

type failingEnqueuer struct {
	ok  bool
	req enqueue.Request
}

func (f *failingEnqueuer) Enqueue(_ context.Context, r enqueue.Request) (enqueue.Receipt, error) {
	if !f.ok {
		return enqueue.Receipt{Batches: []enqueue.Batch{{}}}, errors.New("redis went away")
	}
	f.req = r
	return enqueue.Receipt{Kind: r.Kind, IDs: len(r.IDs), Batches: []enqueue.Batch{{}}}, nil
}

// TestVersionRuleAfterV1IsGone: with V1 switched off, version times come
// from V2 and the plan is the same.
func TestVersionRuleAfterV1IsGone(t *testing.T) {
	t.Parallel()
	inv := account(400, 4, 10)
	b := setup(t, inv)
	b.env.Fake.SetV1Off(true)
	_, plan, err := b.runner.Execute(context.Background(), rule(t, "ci-versions", modelid.KindVersion, ciRule),
		policy.Options{Mode: policy.ModePreview, Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	want := policytest.CIVersions(inv, plan.At)
	if len(want) < 10 {
		t.Fatalf("only %d deletions expected: the account does not exercise the rule", len(want))
	}
	if diff := cmp.Diff(want, deletions(plan)); diff != "" {
		t.Errorf("deletions without V1 differ from brute force (-want +got)\n%s", diff)
	}
	st := b.env.Fake.Stats()
	sets, models := st.Endpoints["/v2/model?Action=DescribeModelSet"], st.Endpoints["/v2/model?Action=DescribeModel"]
	if sets != plan.Totals.DetailCalls || models != 4*sets {
		t.Errorf("V2 reads: %d DescribeModelSet, %d DescribeModel for %d models; want one per model and one per version",
			sets, models, plan.Totals.DetailCalls)
	}
}
