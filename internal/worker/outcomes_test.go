package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

// states reads the ledger's state of each ID.
func states(t *testing.T, e *workertest.Env, k modelid.Kind, ids []modelid.ID) []ledger.State {
	t.Helper()
	recs, err := ledger.New(e.RDB, ledger.Config{}).LookupMany(context.Background(), k, ids)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ledger.State, len(recs))
	for i, r := range recs {
		out[i] = r.State
	}
	return out
}

func enqueueIDs(t *testing.T, e *workertest.Env, reqs ...enqueue.Request) {
	t.Helper()
	p, err := enqueue.New(e.RDB, enqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if _, err := p.Enqueue(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func deadCount(t *testing.T, e *workertest.Env) int64 {
	t.Helper()
	n, err := deadletter.NewStore(e.RDB).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMixedFleetRefused: one fleet on one Redis deletes through one API. A
// worker set to v2 beside a worker set to v1 refuses to start, names the
// conflict and takes no work.
func TestMixedFleetRefused(t *testing.T) {
	t.Parallel()
	e := workertest.New(t, qianfantest.Config{})
	e.Start(t, func(c *worker.Config) { c.QianfanAPI = fleet.V1 })
	cfg := e.Config()
	cfg.Logger = (&workertest.Log{}).Logger()
	cfg.QianfanAPI = fleet.V2
	w, err := worker.New(e.RDB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = w.Start()
	if err == nil {
		w.Shutdown() // started when it should not have: stop it, so the test fails cleanly
	}
	if !errors.Is(err, fleet.ErrAPIConflict) || !strings.Contains(err.Error(), "v1") || !strings.Contains(err.Error(), "v2") {
		t.Fatalf("a v2 worker beside a v1 worker: %v; want a refusal naming both settings", err)
	}
}

// TestBothIDFormsOfOneModelReadDeleted: a model enqueued by its int ID and
// by its am- ID is deleted once; both forms read deleted, neither is dead.
func TestBothIDFormsOfOneModelReadDeleted(t *testing.T) {
	t.Parallel()
	fc, _, _ := workertest.Account(3, 0)
	e := workertest.New(t, fc)
	e.Start(t)
	m := fc.Inventory.Models[1]
	byInt, byStr := modelid.IntID(m.ID), modelid.StringID(m.IDStr)
	enqueueIDs(t, e, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{byInt, byStr}})
	both := []modelid.ID{byInt, byStr}
	workertest.Eventually(t, 60*time.Second, "both forms settled", func() bool {
		st := states(t, e, modelid.KindModel, both)
		return st[0].Final() && st[1].Final()
	})
	if st := states(t, e, modelid.KindModel, both); st[0] != ledger.StateDeleted || st[1] != ledger.StateDeleted {
		t.Errorf("states %v, want both deleted", st)
	}
	if n := deadCount(t, e); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	if e.Fake.Exists(qianfantest.KindModel, m.ID) {
		t.Error("the model still exists")
	}
}

// TestRefusedReadPausesSmallBatches: a one-ID batch reads the ID's detail
// before deleting; under a revoked key that read is refused. The fleet
// pauses and spends no retry (max-retry 2 would dead-letter otherwise),
// and once the key is restored the ID is deleted.
func TestRefusedReadPausesSmallBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: several seconds")
	}
	t.Parallel()
	fc, _, _ := workertest.Account(4, 0)
	e := workertest.New(t, fc)
	e.Start(t, func(c *worker.Config) { c.MaxRetry = 2; c.PauseProbe = time.Second })
	e.Fake.Revoke(qianfantest.DefaultAccessKey)
	id := modelid.IntID(fc.Inventory.Models[2].ID)
	enqueueIDs(t, e, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{id}})
	ps := fleet.NewPauseStore(e.RDB)
	workertest.Eventually(t, 30*time.Second, "the fleet to pause", func() bool {
		st, err := ps.Status(context.Background())
		return err == nil && st.State == fleet.Paused
	})
	if e.Fake.Stats().Deletes != 0 {
		t.Errorf("%d delete calls under a revoked key", e.Fake.Stats().Deletes)
	}
	e.Fake.Restore(qianfantest.DefaultAccessKey)
	workertest.Eventually(t, 60*time.Second, "the ID deleted", func() bool {
		return states(t, e, modelid.KindModel, []modelid.ID{id})[0] == ledger.StateDeleted
	})
	if n := deadCount(t, e); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// TestRemovedV1RouteSwitchesToV2: every V1 path answers 404 with an empty
// body and a gateway's X-Bce-Error-Code: NotFound, while V2 answers. The
// fleet recognises a removed route, switches, and deletes everything
// through V2; nothing is dead-lettered for it, even with max-retry 2.
func TestRemovedV1RouteSwitchesToV2(t *testing.T) {
	t.Parallel()
	fc, _, _ := workertest.Account(60, 0)
	fc.Assumptions = qianfantest.Assumptions{V1Gone: qianfantest.GoneForms()["404-route-removed"]}
	e := workertest.New(t, fc)
	e.Fake.SetV1Off(true)
	e.Start(t, func(c *worker.Config) { c.MaxRetry = 2 })
	var ids []modelid.ID
	for _, m := range fc.Inventory.Models[:50] {
		ids = append(ids, modelid.StringID(m.IDStr))
	}
	enqueueIDs(t, e, enqueue.Request{Kind: modelid.KindModel, IDs: ids})
	waitFinalWithin(t, e, 60*time.Second, modelid.KindModel, ids...)
	for i, st := range states(t, e, modelid.KindModel, ids) {
		if st != ledger.StateDeleted {
			t.Errorf("%s is %s, want deleted", ids[i], st)
		}
	}
	if n := deadCount(t, e); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	if _, at, _ := fleet.NewAPIModeStore(e.RDB, fleet.Auto).Switched(context.Background()); at.IsZero() {
		t.Error("the fleet did not switch to V2")
	}
}

// TestV2LostAnswersNeverDeadLetterDeletedIDs: through V2, a fifth of the
// delete calls delete and lose their answer. No valid ID is dead-lettered,
// none reads deleted while it exists, and every valid ID is gone.
func TestV2LostAnswersNeverDeadLetterDeletedIDs(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: several seconds")
	}
	t.Parallel()
	fc, _, _ := workertest.Account(120, 0)
	fc.Faults = qianfantest.Faults{RateDropAfterDelete: 0.2, Seed: 7}
	e := workertest.New(t, fc)
	e.Start(t, func(c *worker.Config) { c.QianfanAPI = fleet.V2; c.VerifyWait = time.Second })
	var ids []modelid.ID
	for _, m := range fc.Inventory.Models[:100] {
		ids = append(ids, modelid.StringID(m.IDStr))
	}
	enqueueIDs(t, e, enqueue.Request{Kind: modelid.KindModel, IDs: ids})
	waitFinalWithin(t, e, 90*time.Second, modelid.KindModel, ids...)
	for i, st := range states(t, e, modelid.KindModel, ids) {
		exists := e.Fake.Exists(qianfantest.KindModel, ids[i].String())
		switch {
		case exists:
			t.Errorf("%s still exists (%s)", ids[i], st)
		case st == ledger.StateDead:
			t.Errorf("%s was deleted but is dead-lettered", ids[i])
		}
	}
	if n := deadCount(t, e); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// TestUnlistedModelsAreNeverReportedDeletedUndeleted: a batch holding a bad
// ID is cut short by a crash mid-call (its answer lost, nothing deleted),
// in an account whose listings do not return its models. The batch is sent
// again and split: every valid model is really deleted before it reads
// deleted, and the bad ID is dead once.
func TestUnlistedModelsAreNeverReportedDeletedUndeleted(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: several seconds")
	}
	t.Parallel()
	fc, _, _ := workertest.Account(40, 0)
	for i := range fc.Inventory.Models {
		fc.Inventory.Models[i].Unlisted = i < 30
	}
	fc.Faults = qianfantest.Faults{RateReset: 0.3, Seed: 11}
	e := workertest.New(t, fc)
	e.Start(t, func(c *worker.Config) { c.VerifyWait = time.Second })
	var ids []modelid.ID
	for _, m := range fc.Inventory.Models[:30] {
		ids = append(ids, modelid.IntID(m.ID))
	}
	bad := modelid.IntID(91_000_001)
	enqueueIDs(t, e, enqueue.Request{Kind: modelid.KindModel, IDs: append(ids, bad)})
	all := append(ids, bad)
	waitFinalWithin(t, e, 120*time.Second, modelid.KindModel, all...)
	for i, st := range states(t, e, modelid.KindModel, ids) {
		if e.Fake.Exists(qianfantest.KindModel, mustInt(ids[i])) {
			t.Errorf("%s still exists but reads %s", ids[i], st)
		}
	}
	if st := states(t, e, modelid.KindModel, []modelid.ID{bad})[0]; st == ledger.StateDeleted {
		t.Errorf("the bad ID reads deleted")
	}
}

func mustInt(id modelid.ID) int64 {
	n, _ := id.Int()
	return n
}
