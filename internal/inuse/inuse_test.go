package inuse

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a clock tests move by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock { c := &clock{}; c.ns.Store(t0.UnixNano()); return c }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type env struct {
	fake  *qianfantest.Server
	qc    *qianfan.Client
	rdb   *redis.Client
	clock *clock
}

// account holds models am-a (versions amv-a1, amv-a2), am-b (amv-b1, amv-b2)
// and am-c (amv-c1), with no service and no task.
func account() *qianfantest.Inventory {
	model := func(id int64, s string, vs ...string) qianfantest.Model {
		m := qianfantest.Model{ID: id, IDStr: "am-" + s, Name: "model-" + s, CreateTime: t0.Add(-48 * time.Hour)}
		for i, v := range vs {
			m.Versions = append(m.Versions, qianfantest.Version{ID: id*10 + int64(i), IDStr: "amv-" + v, Version: i + 1,
				State: "Ready", CreateTime: t0.Add(-24 * time.Hour)})
		}
		return m
	}
	return &qianfantest.Inventory{Models: []qianfantest.Model{
		model(100, "a", "a1", "a2"), model(200, "b", "b1", "b2"), model(300, "c", "c1"),
	}}
}

func setup(t testing.TB, inv *qianfantest.Inventory) *env {
	t.Helper()
	fake := qianfantest.New(qianfantest.Config{Inventory: inv})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	qc, err := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
		qianfan.WithBaseURL(srv.URL), qianfan.WithMaxElapsed(0))
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, qc: qc, rdb: redistest.Start(t).Client(t), clock: newClock()}
}

func (e *env) view(cfg Config) *View {
	cfg.Now = e.clock.Now
	return New(e.rdb, e.qc, cfg)
}

// listings counts the service listings the fake has answered.
func (e *env) listings() int {
	return e.fake.Stats().Endpoints[qianfan.PathV2Service+"?Action="+qianfan.ActionDescribeServices]
}

func check(t *testing.T, v *View, k modelid.Kind, ids ...string) map[string]Result {
	t.Helper()
	var in []modelid.ID
	for _, s := range ids {
		id, err := modelid.ParseID(s)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, id)
	}
	rs, err := v.Check(t.Context(), k, in)
	if err != nil {
		t.Fatalf("Check %s %v: %v", k, ids, err)
	}
	out := map[string]Result{}
	for i, r := range rs {
		if r.ID != in[i] {
			t.Fatalf("result %d is for %s, want %s", i, r.ID, in[i])
		}
		out[ids[i]] = r
	}
	return out
}

func want(t *testing.T, got map[string]Result, id string, s State, reason string) {
	t.Helper()
	r := got[id]
	if r.State != s || !strings.Contains(r.Reason, reason) {
		t.Errorf("%s: %s %q; want %s with %q", id, r.State, r.Reason, s, reason)
	}
}

func TestServicesOfBothProtocolVersionsProtect(t *testing.T) {
	t.Parallel()
	inv := account()
	inv.Services = []qianfantest.Service{
		{ID: 1, IDStr: "svco-v2", Name: "chat-v2", Status: "Serving", Model: "am-a", Version: "amv-a1", ProtocolVersion: 2},
		{ID: 2, IDStr: "svco-v1", Name: "old-v1", Status: "Stopped", Model: "am-b", Version: "amv-b2"},
	}
	e := setup(t, inv)
	v := e.view(Config{})
	models := check(t, v, modelid.KindModel, "am-a", "am-b", "am-c")
	want(t, models, "am-a", InUse, "service chat-v2 (svco-v2, protocol v2, Serving)")
	want(t, models, "am-b", InUse, "service old-v1 (svco-v1, protocol v1, Stopped)")
	want(t, models, "am-c", Free, "")
	versions := check(t, v, modelid.KindVersion, "amv-a1", "amv-a2", "amv-b2", "amv-c1")
	want(t, versions, "amv-a1", InUse, "protocol v2")
	want(t, versions, "amv-b2", InUse, "protocol v1, Stopped")
	want(t, versions, "amv-a2", Free, "")
	want(t, versions, "amv-c1", Free, "")
	if got := models["am-a"].Users; len(got) != 1 || got[0] != "service chat-v2 (svco-v2, protocol v2, Serving)" {
		t.Errorf("users of am-a: %q", got)
	}
}

func TestBatchTasksProtectWhileUnfinished(t *testing.T) {
	t.Parallel()
	inv := account()
	inv.BatchTasks = []qianfantest.BatchTask{
		{ID: "infer-run", Name: "nightly", Status: "Running", Version: "amv-a2", CreateTime: t0},
		{ID: "infer-q", Name: "queued", Status: "Queuing", Version: "amv-c1", CreateTime: t0},
		{ID: "infer-done", Name: "finished", Status: "Done", Version: "amv-b1", CreateTime: t0},
		{ID: "infer-fail", Name: "broken", Status: "Failed", Version: "amv-b2", CreateTime: t0},
	}
	e := setup(t, inv)
	v := e.view(Config{})
	versions := check(t, v, modelid.KindVersion, "amv-a1", "amv-a2", "amv-b1", "amv-b2", "amv-c1")
	want(t, versions, "amv-a2", InUse, "batch inference task nightly (infer-run, Running)")
	want(t, versions, "amv-c1", InUse, "batch inference task queued (infer-q, Queuing)")
	for _, id := range []string{"amv-a1", "amv-b1", "amv-b2"} {
		want(t, versions, id, Free, "")
	}
	// The model of a task's version is learned (DescribeModel here) and
	// protected through it.
	models := check(t, v, modelid.KindModel, "am-a", "am-b", "am-c")
	want(t, models, "am-a", InUse, "batch inference task nightly (infer-run, Running) on version amv-a2")
	want(t, models, "am-c", InUse, "infer-q")
	want(t, models, "am-b", Free, "")
	// The relation is remembered: the next listing asks no detail.
	described := e.fake.Stats().Endpoints[qianfan.PathV2Model+"?Action="+qianfan.ActionDescribeModel]
	e.clock.Advance(3 * time.Second)
	check(t, v, modelid.KindModel, "am-a")
	if again := e.fake.Stats().Endpoints[qianfan.PathV2Model+"?Action="+qianfan.ActionDescribeModel]; again != described || described == 0 {
		t.Errorf("DescribeModel calls %d then %d; want some, then none more", described, again)
	}
	// A task that ends frees its version at the next listing.
	if err := e.fake.SetBatchTaskStatus("infer-run", "Stopped"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(3 * time.Second)
	want(t, check(t, v, modelid.KindVersion, "amv-a2"), "amv-a2", Free, "")
}

func TestUnplacedVersionLeavesModelsUndecided(t *testing.T) {
	t.Parallel()
	inv := account()
	inv.BatchTasks = []qianfantest.BatchTask{{ID: "infer-x", Name: "orphan", Status: "Stopping", Version: "amv-b1", CreateTime: t0}}
	e := setup(t, inv)
	// The version goes; its task still names it, and no listing ever
	// placed it, so no model can be said free.
	if _, err := e.qc.DeleteModel(t.Context(), "amv-b1"); err != nil {
		t.Fatal(err)
	}
	v := e.view(Config{})
	got := check(t, v, modelid.KindModel, "am-c")
	want(t, got, "am-c", Unknown, "batch inference task orphan (infer-x, Stopping) runs version amv-b1, whose model is unknown")
}

func TestListingFailingPartWayCannotTell(t *testing.T) {
	t.Parallel()
	inv := account()
	for i := range 130 {
		inv.Services = append(inv.Services, qianfantest.Service{ID: int64(1000 + i), IDStr: fmt.Sprintf("svco-%03d", i),
			Name: "s", Status: "Serving", Model: "am-c", Version: "amv-c1", ProtocolVersion: 2})
	}
	e := setup(t, inv)
	v := e.view(Config{})
	for _, action := range []string{qianfan.ActionDescribeServices, qianfan.ActionDescribeBatchInferenceTasks} {
		e.fake.SetFaults(qianfantest.Faults{FailPages: map[string]int{action: 2}})
		if action == qianfan.ActionDescribeBatchInferenceTasks {
			for i := range 120 {
				if err := e.fake.AddBatchTask(qianfantest.BatchTask{ID: fmt.Sprintf("infer-%03d", i), Status: "Running", Version: "amv-a1"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, err := v.Check(t.Context(), modelid.KindModel, []modelid.ID{modelid.StringID("am-b")})
		if !errors.Is(err, ErrCannotTell) {
			t.Errorf("%s failing at page 2: %v; want ErrCannotTell", action, err)
		}
		// Within MaxAge the fleet does not list again after a failure.
		reads := e.fake.Stats().Reads
		if _, err := v.Check(t.Context(), modelid.KindModel, []modelid.ID{modelid.StringID("am-b")}); !errors.Is(err, ErrCannotTell) || e.fake.Stats().Reads != reads {
			t.Errorf("right after a failed listing: %v, %d more reads; want cannot tell and none", err, e.fake.Stats().Reads-reads)
		}
		e.rdb.Del(t.Context(), keyFailed) // MaxAge has passed
	}
	if e.fake.Stats().FailedPages < 2 {
		t.Errorf("faults struck %d times", e.fake.Stats().FailedPages)
	}
	// Once the listing works, the answer comes.
	e.fake.SetFaults(qianfantest.Faults{})
	want(t, check(t, v, modelid.KindModel, "am-b"), "am-b", Free, "")
}

func TestFreshness(t *testing.T) {
	t.Parallel()
	e := setup(t, account())
	v := e.view(Config{}) // MaxAge 2s
	want(t, check(t, v, modelid.KindModel, "am-a"), "am-a", Free, "")
	first := e.listings()
	if first != 2 {
		t.Fatalf("%d service listings, want 2 (protocolVersion 1 and 2)", first)
	}
	if err := e.fake.AddService(qianfantest.Service{ID: 9, IDStr: "svco-late", Name: "late", Status: "Deploying",
		Model: "am-a", Version: "amv-a1", ProtocolVersion: 2}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(1999 * time.Millisecond)
	// Within MaxAge: the view is used as it is, without listing.
	want(t, check(t, v, modelid.KindModel, "am-a"), "am-a", Free, "")
	if n := e.listings(); n != first {
		t.Errorf("listed again within MaxAge: %d listings", n)
	}
	// Past it: listed again, and the service deployed since is seen.
	e.clock.Advance(time.Millisecond)
	want(t, check(t, v, modelid.KindModel, "am-a"), "am-a", InUse, "service late (svco-late, protocol v2, Deploying)")
	if n := e.listings(); n != first+2 {
		t.Errorf("%d listings after MaxAge, want %d", n, first+2)
	}
	// Another worker sharing the Redis uses the same view.
	other := e.view(Config{})
	want(t, check(t, other, modelid.KindVersion, "amv-a1"), "amv-a1", InUse, "svco-late")
	if n := e.listings(); n != first+2 {
		t.Errorf("a second worker listed again: %d listings", n)
	}
}

// TestRefreshAhead: with RefreshAhead, a check finding the view past it
// but still fresh lists again and answers from what it listed; before it,
// nothing is listed; a failed listing ahead leaves the current view
// answering until it is stale.
func TestRefreshAhead(t *testing.T) {
	t.Parallel()
	e := setup(t, account())
	v := e.view(Config{RefreshAhead: time.Second}) // MaxAge 2s
	want(t, check(t, v, modelid.KindModel, "am-a"), "am-a", Free, "")
	first := e.listings()
	e.clock.Advance(999 * time.Millisecond)
	want(t, check(t, v, modelid.KindModel, "am-a"), "am-a", Free, "")
	if n := e.listings(); n != first {
		t.Errorf("listed before RefreshAhead: %d listings", n)
	}
	if err := e.fake.AddService(qianfantest.Service{ID: 9, IDStr: "svco-late", Name: "late", Status: "Deploying",
		Model: "am-a", Version: "amv-a1", ProtocolVersion: 2}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Millisecond)
	want(t, check(t, v, modelid.KindModel, "am-a"), "am-a", InUse, "service late (svco-late, protocol v2, Deploying)")
	if n := e.listings(); n != first+2 {
		t.Errorf("%d listings at RefreshAhead, want %d", n, first+2)
	}
	// A listing ahead that fails: the view listed a second ago still answers.
	e.clock.Advance(time.Second)
	e.fake.SetFaults(qianfantest.Faults{Rate503: 1})
	want(t, check(t, v, modelid.KindModel, "am-a"), "am-a", InUse, "svco-late")
	if e.fake.Stats().Calls[qianfantest.Outcome503] == 0 {
		t.Error("no listing was tried ahead")
	}
}

func TestIntIDs(t *testing.T) {
	t.Parallel()
	inv := account()
	inv.Services = []qianfantest.Service{{ID: 1, IDStr: "svco-1", Name: "s", Status: "New", Model: "am-a", Version: "amv-a1", ProtocolVersion: 2}}
	e := setup(t, inv)
	st := inventory.NewStore(e.rdb)
	if err := st.Learn(t.Context(), modelid.KindModel, 100, "am-a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Learn(t.Context(), modelid.KindVersion, 1001, "amv-a2"); err != nil {
		t.Fatal(err)
	}
	v := e.view(Config{})
	want(t, check(t, v, modelid.KindModel, "100", "200"), "100", InUse, "svco-1")
	want(t, check(t, v, modelid.KindModel, "200"), "200", Unknown, "string form")
	want(t, check(t, v, modelid.KindVersion, "1001"), "1001", Free, "")
	want(t, check(t, v, modelid.KindVersion, "amv-a1"), "amv-a1", InUse, "svco-1")
	got, err := v.Protected(t.Context(), modelid.KindModel, []modelid.ID{modelid.IntID(100), modelid.IntID(200), modelid.StringID("am-c")})
	if err != nil || len(got) != 2 || !strings.Contains(got[modelid.IntID(100)], "svco-1") || !strings.Contains(got[modelid.IntID(200)], "cannot tell") {
		t.Errorf("Protected: %v %v", got, err)
	}
}

func TestOneListingForTheFleet(t *testing.T) {
	t.Parallel()
	e := setup(t, account())
	ctx := t.Context()
	// Another worker holds the lock: this one waits, then answers
	// ErrCannotTell rather than listing beside it.
	if err := e.rdb.Set(ctx, keyLock, "other", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	v := e.view(Config{Wait: 20 * time.Millisecond, Poll: time.Millisecond})
	if _, err := v.Check(ctx, modelid.KindModel, []modelid.ID{modelid.StringID("am-a")}); !errors.Is(err, ErrCannotTell) {
		t.Fatalf("lock held elsewhere: %v; want ErrCannotTell", err)
	}
	if n := e.listings(); n != 0 {
		t.Fatalf("listed while another worker held the lock: %d", n)
	}
	// The other worker finishes: the waiting one reads its result.
	waiter := e.view(Config{Wait: time.Minute, Poll: time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := waiter.Check(ctx, modelid.KindModel, []modelid.ID{modelid.StringID("am-a")})
		done <- err
	}()
	holder := e.view(Config{})
	if err := holder.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Del(ctx, keyLock).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting worker never answered")
	}
	if n := e.listings(); n != 2 {
		t.Errorf("%d service listings, want the 2 of one listing", n)
	}
	if ok, _ := e.rdb.Exists(context.Background(), keyLock).Result(); ok != 0 {
		t.Error("the lock was left behind")
	}
}

// BenchmarkCheckFresh: answering 100 IDs from a fresh view (Redis reads
// only; the clock never moves, so nothing is listed again).
func BenchmarkCheckFresh(b *testing.B) {
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: 200, Versions: 3, Services: 300, BatchTasks: 300, Seed: 1}, t0)
	e := setup(b, inv)
	v := e.view(Config{})
	ids := make([]modelid.ID, 100)
	for i := range ids {
		ids[i] = modelid.StringID(inv.Models[i].IDStr)
	}
	if _, err := v.Check(b.Context(), modelid.KindModel, ids); err != nil {
		b.Fatal(err)
	}
	listed := e.listings()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Check(b.Context(), modelid.KindModel, ids); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if e.listings() != listed {
		b.Fatal("a fresh view was listed again")
	}
	b.ReportMetric(float64(listed), "service-listing-calls")
}
