package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

const pathUserList = "/wenxinworkshop/modelrepo/model/user/list"
const pathModelDetail = "/wenxinworkshop/modelrepo/modelDetail"

// lossy is the real deleter on the fake, with scripted lost answers: the
// n-th delete call (from 0) "drop"s (deletes, answer lost) or "reset"s
// (answer lost, nothing sent).
type lossy struct {
	QianfanDeleter
	mu    sync.Mutex
	n     int
	fault map[int]string
	// before, when set, runs before the n-th call.
	before func(n int)
}

// DeleteOne is V2's one-ID delete, with the same scripted faults.
func (l *lossy) DeleteOne(ctx context.Context, k modelid.Kind, id string) (qianfan.Result, error) {
	l.mu.Lock()
	mode := l.fault[l.n]
	l.n++
	l.mu.Unlock()
	lost := &qianfan.Error{Err: errors.New("connection reset by peer"), Ambiguous: true, Attempts: 1}
	if mode == "reset" {
		return qianfan.Result{}, lost
	}
	res, err := l.QianfanDeleter.DeleteOne(ctx, k, id)
	if mode == "drop" && err == nil {
		return qianfan.Result{}, lost
	}
	return res, err
}

func (l *lossy) Delete(ctx context.Context, k modelid.Kind, list []modelid.ID) (qianfan.Result, error) {
	l.mu.Lock()
	mode, n := l.fault[l.n], l.n
	l.n++
	l.mu.Unlock()
	if l.before != nil {
		l.before(n)
	}
	lost := &qianfan.Error{Err: errors.New("connection reset by peer"), Ambiguous: true, Attempts: 1}
	if mode == "reset" {
		return qianfan.Result{}, lost
	}
	res, err := l.QianfanDeleter.Delete(ctx, k, list)
	if mode == "drop" && err == nil {
		return qianfan.Result{}, lost
	}
	return res, err
}

// clock is a settable clock shared by the handler and the ledger.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeBundle struct {
	*bundle
	fake  *qianfantest.Server
	qc    *qianfan.Client
	inv   *qianfantest.Inventory
	del   *lossy
	clock *clock
}

// setupFake runs the handler on the project's fake holding models models
// (versions each), with a Finder, after a listing of the account; unnamed
// models have their names left out of that listing.
func setupFake(t *testing.T, models, versions int, asm qianfantest.Assumptions, fault map[int]string, mod func(*HandlerConfig, *redis.Client), unnamed ...string) *fakeBundle {
	t.Helper()
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: models, Versions: versions, Seed: 7}, time.Now())
	return setupFakeInv(t, inv, asm, fault, mod, unnamed...)
}

// setupFakeInv is setupFake on the inventory inv.
func setupFakeInv(t *testing.T, inv *qianfantest.Inventory, asm qianfantest.Assumptions, fault map[int]string, mod func(*HandlerConfig, *redis.Client), unnamed ...string) *fakeBundle {
	t.Helper()
	fake := qianfantest.New(qianfantest.Config{Inventory: inv, Assumptions: asm})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	qc, err := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
		qianfan.WithBaseURL(srv.URL), qianfan.WithMaxElapsed(0))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Start(t).Client(t)
	c := &clock{t: time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)}
	fb := &fakeBundle{fake: fake, qc: qc, inv: inv, clock: c, del: &lossy{QianfanDeleter: QianfanDeleter{Client: qc}, fault: fault}}
	fb.bundle = &bundle{q: &queue{}, rdb: rdb, ledger: ledger.New(rdb, ledger.Config{Logger: slog.New(slog.DiscardHandler), Clock: c}),
		inv: inventory.NewStore(rdb)}
	cfg := HandlerConfig{BatchSize: 10, Logger: slog.New(slog.DiscardHandler),
		VerifyPoll: time.Millisecond, Guard: guard{}, Clock: c, Finder: QianfanFinder{Client: qc}}
	if mod != nil {
		mod(&cfg, rdb)
	}
	fb.h = NewHandler(fb.del, fb.q, fb.ledger, fb.bundle.inv, cfg)
	ctx := context.Background()
	seq, err := fb.bundle.inv.Stamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := inventory.Read(ctx, qc, inventory.SourceV1|inventory.SourceV2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.Models {
		for _, u := range unnamed {
			if s.Models[i].ID == u {
				s.Models[i].Name = ""
			}
		}
	}
	s.Seq = seq
	if err := fb.bundle.inv.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	return fb
}

// listing takes and saves a listing of the account, as the verifier does.
func (fb *fakeBundle) listing(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	seq, err := fb.bundle.inv.Stamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := inventory.Read(ctx, fb.qc, inventory.SourceV1|inventory.SourceV2)
	if err != nil {
		t.Fatal(err)
	}
	s.Seq = seq
	if err := fb.bundle.inv.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
}

func (fb *fakeBundle) wanted(t *testing.T) int64 {
	t.Helper()
	n, err := fb.rdb.ZCard(context.Background(), "qfpurge:{inv}:wanted").Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (fb *fakeBundle) recs(t *testing.T, k modelid.Kind, list []modelid.ID) []ledger.Record {
	t.Helper()
	recs, err := fb.ledger.LookupMany(context.Background(), k, list)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func modelIDs(inv *qianfantest.Inventory, idx ...int) []modelid.ID {
	out := make([]modelid.ID, len(idx))
	for i, j := range idx {
		out[i] = modelid.IntID(inv.Models[j].ID)
	}
	return out
}

// TestLostAnswerSettledByName: a batch's call deletes its models and loses
// the answer; the retry is rejected. Each model's name was known from the
// listing before the call, so each is read by the V1 listing filtered by
// its name (one call each, under either reading of the filter), and, shown
// before and absent now, recorded deleted and verified. No listing of the
// account is asked for or taken.
func TestLostAnswerSettledByName(t *testing.T) {
	for _, prefix := range []bool{false, true} {
		t.Run(map[bool]string{false: "contains", true: "prefix"}[prefix], func(t *testing.T) {
			fb := setupFake(t, 1000, 1, qianfantest.Assumptions{V1NameFilterPrefix: prefix}, map[int]string{0: "drop"}, nil)
			batch := modelIDs(fb.inv, 401, 522, 743, 998)
			before := fb.fake.Stats()
			waits := 0
			res := fb.drain(t, newBatch(t, batch), "p", func() {
				waits++
				fb.clock.add(6 * time.Second)
			})
			if len(res.archived) != 0 {
				t.Fatalf("archived %v", res.archived)
			}
			for _, r := range fb.recs(t, modelid.KindModel, batch) {
				if r.State != ledger.StateDeleted || r.Verified.IsZero() {
					t.Errorf("%s: %s, verified %v; want deleted and verified", r.ID, r.State, r.Verified)
				}
			}
			after := fb.fake.Stats()
			if n := after.NameFiltered - before.NameFiltered; n != len(batch) {
				t.Errorf("%d filtered listings, want %d (one per lost ID)", n, len(batch))
			}
			if n := after.Endpoints[pathUserList] - before.Endpoints[pathUserList]; n != len(batch) {
				t.Errorf("%d user/list calls, want %d: no listing of the account", n, len(batch))
			}
			if n := after.Reads - before.Reads; n != len(batch) {
				t.Errorf("%d reads in all, want %d", n, len(batch))
			}
			if n := fb.wanted(t); n != 0 {
				t.Errorf("%d listings still wanted", n)
			}
			if waits < 2 {
				t.Errorf("%d waits: the reads came before the lost call was %s old", waits, 10*time.Second)
			}
		})
	}
}

// TestLostAnswerStillPresentIsSentAgain: the call loses its answer without
// deleting; before the retry someone else deletes one of the batch's
// models, so the retry is rejected. Read by name, the other model is still
// there: it is sent again and deleted by that call; the one deleted
// meanwhile, shown before and absent now, is recorded deleted.
func TestLostAnswerStillPresentIsSentAgain(t *testing.T) {
	fb := setupFake(t, 1000, 1, qianfantest.Assumptions{}, map[int]string{0: "reset"}, nil)
	batch := modelIDs(fb.inv, 610, 611)
	fb.del.before = func(n int) {
		if n == 1 {
			if _, err := fb.del.QianfanDeleter.Delete(context.Background(), modelid.KindModel, batch[1:]); err != nil {
				t.Error(err)
			}
		}
	}
	before := fb.fake.Stats()
	res := fb.drain(t, newBatch(t, batch), "p", func() { fb.clock.add(6 * time.Second) })
	if len(res.archived) != 0 {
		t.Fatalf("archived %v", res.archived)
	}
	recs := fb.recs(t, modelid.KindModel, batch)
	if recs[0].State != ledger.StateDeleted || !recs[0].Verified.IsZero() {
		t.Errorf("%s: %s, verified %v; want deleted by its own call, not verified by a read", recs[0].ID, recs[0].State, recs[0].Verified)
	}
	if recs[1].State != ledger.StateDeleted || recs[1].Verified.IsZero() {
		t.Errorf("%s: %s, verified %v; want deleted, verified absent", recs[1].ID, recs[1].State, recs[1].Verified)
	}
	if fb.fake.Exists(qianfantest.KindModel, fb.inv.Models[610].ID) {
		t.Error("the model still present was not deleted")
	}
	after := fb.fake.Stats()
	if n := after.NameFiltered - before.NameFiltered; n != 2 {
		t.Errorf("%d filtered listings, want 2", n)
	}
	if n := after.Endpoints[pathUserList] - before.Endpoints[pathUserList]; n != 2 {
		t.Errorf("%d user/list calls, want 2: no listing of the account", n)
	}
}

// TestLostVersionsSettledByTheirModelsDetail: versions deleted by a call
// whose answer was lost are read through their model's detail, which lists
// all its versions: one call per model, no listing.
func TestLostVersionsSettledByTheirModelsDetail(t *testing.T) {
	fb := setupFake(t, 1000, 2, qianfantest.Assumptions{}, map[int]string{0: "drop"}, nil)
	batch := []modelid.ID{
		modelid.StringID(fb.inv.Models[100].Versions[0].IDStr),
		modelid.StringID(fb.inv.Models[100].Versions[1].IDStr),
		modelid.StringID(fb.inv.Models[200].Versions[1].IDStr),
	}
	before := fb.fake.Stats()
	res := fb.drain(t, newBatch(t, batch, func(p *Payload) { p.Kind = modelid.KindVersion }), "p",
		func() { fb.clock.add(6 * time.Second) })
	if len(res.archived) != 0 {
		t.Fatalf("archived %v", res.archived)
	}
	for _, r := range fb.recs(t, modelid.KindVersion, batch) {
		if r.State != ledger.StateDeleted || r.Verified.IsZero() {
			t.Errorf("%s: %s, verified %v; want deleted and verified", r.ID, r.State, r.Verified)
		}
	}
	after := fb.fake.Stats()
	if n := after.Endpoints[pathModelDetail] - before.Endpoints[pathModelDetail]; n != 2 {
		t.Errorf("%d model details, want 2 (one per model)", n)
	}
	if n := after.Reads - before.Reads; n != 2 {
		t.Errorf("%d reads in all, want 2", n)
	}
	if !fb.fake.Exists(qianfantest.KindModel, fb.inv.Models[100].ID) {
		t.Error("the model itself is gone")
	}
}

// TestLostV2AnswerSettledByName: through V2 (one ID per call) a call
// deletes its model and loses the answer; the retry's "not found" proves
// nothing. While V1 still reads, the model is read by name like a V1
// batch's: one filtered listing, no listing of the account.
func TestLostV2AnswerSettledByName(t *testing.T) {
	fb := setupFake(t, 1000, 1, qianfantest.Assumptions{}, map[int]string{1: "drop"}, func(c *HandlerConfig, rdb *redis.Client) {
		c.API = fleet.NewAPIModeStore(rdb, fleet.V2)
	})
	batch := []modelid.ID{modelid.StringID(fb.inv.Models[500].IDStr), modelid.StringID(fb.inv.Models[501].IDStr),
		modelid.StringID(fb.inv.Models[502].IDStr)}
	before := fb.fake.Stats()
	res := fb.drain(t, newBatch(t, batch), "p", func() { fb.clock.add(6 * time.Second) })
	if len(res.archived) != 0 {
		t.Fatalf("archived %v", res.archived)
	}
	recs := fb.recs(t, modelid.KindModel, batch)
	for i, r := range recs {
		if r.State != ledger.StateDeleted || (i == 1) == r.Verified.IsZero() {
			t.Errorf("%s: %s, verified %v; want deleted, verified only for the lost one", r.ID, r.State, r.Verified)
		}
	}
	after := fb.fake.Stats()
	if n := after.NameFiltered - before.NameFiltered; n != 1 {
		t.Errorf("%d filtered listings, want 1", n)
	}
	if n := after.Reads - before.Reads; n != 1 {
		t.Errorf("%d reads, want 1", n)
	}
}

// TestLostAnswerUnknownNameFallsBackToAListing: no listing showed the
// models' names before the call, so nothing can be read by name: the batch
// asks for a listing of the account, and that listing settles it.
func TestLostAnswerUnknownNameFallsBackToAListing(t *testing.T) {
	fb0 := qianfantest.NewInventory(qianfantest.Generate{Models: 1000, Versions: 1, Seed: 7}, time.Now())
	unnamed := []string{fb0.Models[300].IDStr}
	fb := setupFake(t, 1000, 1, qianfantest.Assumptions{}, map[int]string{0: "drop"}, nil, unnamed...)
	batch := modelIDs(fb.inv, 300, 301)
	before := fb.fake.Stats()
	listings := 0
	res := fb.drain(t, newBatch(t, batch), "p", func() {
		fb.clock.add(6 * time.Second)
		if fb.wanted(t) > 0 {
			fb.listing(t)
			listings++
		}
	})
	if len(res.archived) != 0 || listings != 1 {
		t.Fatalf("archived %v, %d listings; want none archived, one listing", res.archived, listings)
	}
	for _, r := range fb.recs(t, modelid.KindModel, batch) {
		if r.State != ledger.StateDeleted || r.Verified.IsZero() {
			t.Errorf("%s: %s, verified %v; want deleted and verified", r.ID, r.State, r.Verified)
		}
	}
	if n := fb.fake.Stats().NameFiltered - before.NameFiltered; n != 0 {
		t.Errorf("%d filtered listings, want none (a name was unknown)", n)
	}
}

// TestLostAnswerListingWhenCheaper: in a small account a listing costs
// fewer calls than reading each lost ID: the batch asks for a listing.
func TestLostAnswerListingWhenCheaper(t *testing.T) {
	fb := setupFake(t, 150, 1, qianfantest.Assumptions{}, map[int]string{0: "drop"}, nil)
	batch := modelIDs(fb.inv, 10, 20, 30, 40)
	before := fb.fake.Stats()
	listings := 0
	fb.drain(t, newBatch(t, batch), "p", func() {
		fb.clock.add(6 * time.Second)
		if fb.wanted(t) > 0 {
			fb.listing(t)
			listings++
		}
	})
	if listings != 1 {
		t.Errorf("%d listings, want 1 (2 pages cost less than 4 reads by name)", listings)
	}
	if n := fb.fake.Stats().NameFiltered - before.NameFiltered; n != 0 {
		t.Errorf("%d filtered listings, want none", n)
	}
	got := []ledger.State{}
	for _, r := range fb.recs(t, modelid.KindModel, batch) {
		got = append(got, r.State)
	}
	if diff := cmp.Diff(repeat(ledger.StateDeleted, 4), got); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
}

// TestLostAnswerNameMatchingManyFallsBack: under the substring reading a
// short name's filter matches many models; more than 3 pages of them are
// not walked: the batch asks for a listing of the account instead, and
// that listing settles it.
func TestLostAnswerNameMatchingManyFallsBack(t *testing.T) {
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: 1000, Versions: 1, Seed: 7}, time.Now())
	for i := range 12 {
		inv.Models[100+i].Name = fmt.Sprintf("m%d", i) // "m1" also matches m10, m11
	}
	inv.Models[100].Name = "m"
	fb := setupFakeInv(t, inv, qianfantest.Assumptions{V1MaxPageSize: 2}, map[int]string{0: "drop"}, nil)
	batch := modelIDs(fb.inv, 100, 101)
	before := fb.fake.Stats()
	listings := 0
	res := fb.drain(t, newBatch(t, batch), "p", func() {
		fb.clock.add(6 * time.Second)
		if fb.wanted(t) > 0 {
			fb.listing(t)
			listings++
		}
	})
	if len(res.archived) != 0 || listings != 1 {
		t.Fatalf("archived %v, %d listings; want none archived, one listing", res.archived, listings)
	}
	for _, r := range fb.recs(t, modelid.KindModel, batch) {
		if r.State != ledger.StateDeleted || r.Verified.IsZero() {
			t.Errorf("%s: %s, verified %v; want deleted and verified", r.ID, r.State, r.Verified)
		}
	}
	// "m" matches the 12 models: 6 pages of 2. One page read, then given up.
	if n := fb.fake.Stats().NameFiltered - before.NameFiltered; n != 1 {
		t.Errorf("%d filtered listing pages, want 1", n)
	}
}

// TestLostV2AnswerWithV1RemovedFallsBackToAListing: V1 answers like a
// removed route (a bare 404 with the gateway's header) once the V2 call's
// answer is lost, so the read by name cannot decide; its silence never
// reads as "gone". A V2 listing settles the batch instead.
func TestLostV2AnswerWithV1RemovedFallsBackToAListing(t *testing.T) {
	asm := qianfantest.Assumptions{V1Gone: qianfantest.GoneForms()["404-route-removed"]}
	fb := setupFake(t, 1000, 1, asm, map[int]string{1: "drop"}, func(c *HandlerConfig, rdb *redis.Client) {
		c.API = fleet.NewAPIModeStore(rdb, fleet.V2)
	})
	fb.fake.SetV1Off(true)
	batch := []modelid.ID{modelid.StringID(fb.inv.Models[500].IDStr), modelid.StringID(fb.inv.Models[501].IDStr),
		modelid.StringID(fb.inv.Models[502].IDStr)}
	before := fb.fake.Stats()
	listings := 0
	res := fb.drain(t, newBatch(t, batch), "p", func() {
		fb.clock.add(6 * time.Second)
		if fb.wanted(t) == 0 {
			return
		}
		ctx := context.Background()
		seq, err := fb.bundle.inv.Stamp(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s, err := inventory.Read(ctx, fb.qc, inventory.SourceV2)
		if err != nil {
			t.Fatal(err)
		}
		s.Seq = seq
		if err := fb.bundle.inv.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		listings++
	})
	if len(res.archived) != 0 || listings != 1 {
		t.Fatalf("archived %v, %d listings; want none archived, one V2 listing", res.archived, listings)
	}
	for i, r := range fb.recs(t, modelid.KindModel, batch) {
		if r.State != ledger.StateDeleted || (i == 1) == r.Verified.IsZero() {
			t.Errorf("%s: %s, verified %v; want deleted, verified only for the lost one", r.ID, r.State, r.Verified)
		}
	}
	if n := fb.fake.Stats().Endpoints[pathUserList] - before.Endpoints[pathUserList]; n > 1 {
		t.Errorf("%d V1 listings tried, want at most the one read by name", n)
	}
}
