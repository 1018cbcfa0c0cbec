package inventory_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

type bundle struct {
	fake *qianfantest.Server
	qc   *qianfan.Client
	inv  *qianfantest.Inventory
}

func setup(t *testing.T, g qianfantest.Generate) *bundle {
	t.Helper()
	inv := qianfantest.NewInventory(g, time.Now())
	fake := qianfantest.New(qianfantest.Config{Inventory: inv})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	qc, err := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
		qianfan.WithBaseURL(srv.URL), qianfan.WithMaxElapsed(0))
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{fake: fake, qc: qc, inv: inv}
}

func has(forms []inventory.Form, f inventory.Form) bool { return slices.Contains(forms, f) }

var (
	modelInt    = inventory.Form{Kind: modelid.KindModel, Type: modelid.IDInt}
	modelString = inventory.Form{Kind: modelid.KindModel, Type: modelid.IDString}
	verString   = inventory.Form{Kind: modelid.KindVersion, Type: modelid.IDString}
)

func TestReadSources(t *testing.T) {
	b := setup(t, qianfantest.Generate{Models: 250, Versions: 3, Services: 7, Seed: 1})
	ctx := context.Background()
	s, err := inventory.Read(ctx, b.qc, inventory.SourceV2|inventory.SourceV1|inventory.SourceServices)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Models) != 250 || len(s.Services) != 7 {
		t.Fatalf("%d models, %d services; want 250, 7", len(s.Models), len(s.Services))
	}
	for _, f := range []inventory.Form{modelInt, modelString, verString} {
		if !has(s.Decides, f) {
			t.Errorf("a quiet V1+V2 read does not decide %s", f)
		}
	}
	m := b.inv.Models[17]
	got := s.Models[slices.IndexFunc(s.Models, func(x inventory.Model) bool { return x.ID == m.IDStr })]
	if got.IntID != m.ID || got.Name != m.Name || len(got.Versions) != 3 || !got.Created.Equal(m.CreateTime) {
		t.Errorf("model %s read as %+v", m.IDStr, got)
	}
	used := s.UsedBy()
	for _, svc := range b.inv.Services {
		if svc.Version != "" && len(used[svc.Version]) == 0 {
			t.Errorf("version %s run by %s is not marked used", svc.Version, svc.Name)
		}
	}
	v2, err := inventory.Read(ctx, b.qc, inventory.SourceV2)
	if err != nil || has(v2.Decides, modelInt) || v2.Models[0].IntID != 0 {
		t.Errorf("a V2-only read decides %v (%v); it cannot know int IDs", v2.Decides, err)
	}
}

// TestReadFailsWholeOnAFailedPage: a listing that fails part-way proves
// nothing, and the store keeps the last good snapshot.
func TestReadFailsWholeOnAFailedPage(t *testing.T) {
	b := setup(t, qianfantest.Generate{Models: 250, Versions: 1, Seed: 2})
	b.fake.SetFaults(qianfantest.Faults{Rate503: 0.5, Seed: 9})
	_, err := inventory.Read(context.Background(), b.qc, inventory.SourceV2)
	if err == nil {
		t.Fatal("a read with failing pages succeeded")
	}
}

func TestStoreCheck(t *testing.T) {
	b := setup(t, qianfantest.Generate{Models: 120, Versions: 2, Seed: 3})
	st := inventory.NewStore(redistest.Start(t).Client(t))
	ctx := context.Background()
	if _, _, err := st.Check(ctx, modelid.KindModel, []modelid.ID{modelid.IntID(1)}, 0); !errors.Is(err, inventory.ErrNoSnapshot) {
		t.Fatalf("Check without a snapshot: %v, want ErrNoSnapshot", err)
	}
	// Learn the pairs from a V1 read, then delete two models, then take a
	// V2-only snapshot: ints are decided through their pairs.
	s1, err := inventory.Read(ctx, b.qc, inventory.SourceV1)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, s1); err == nil {
		t.Fatal("a snapshot without an order stamp was saved")
	}
	if s1.Seq, err = st.Stamp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, s1); err != nil {
		t.Fatal(err)
	}
	gone, kept := b.inv.Models[5], b.inv.Models[6]
	if _, err := b.qc.BatchDeleteModels(ctx, qianfan.IntIDs{gone.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.qc.BatchDeleteModelVersions(ctx, qianfan.StringIDs{kept.Versions[0].IDStr}); err != nil {
		t.Fatal(err)
	}
	// The losses are stamped, then the listing: the same millisecond or
	// not, the order decides.
	after, err := st.Stamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := inventory.Read(ctx, b.qc, inventory.SourceV2)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Seq, err = st.Stamp(ctx); err != nil {
		t.Fatal(err)
	}
	s2.Taken = s1.Taken // a coarse clock: the stamps still order them
	if err := st.Save(ctx, s2); err != nil {
		t.Fatal(err)
	}
	ids := []modelid.ID{modelid.IntID(gone.ID), modelid.StringID(gone.IDStr), modelid.IntID(kept.ID), modelid.StringID(kept.IDStr), modelid.IntID(999999999)}
	got, _, err := st.Check(ctx, modelid.KindModel, ids, after)
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory.Presence{inventory.Absent, inventory.Absent, inventory.Present, inventory.Present, inventory.Undecided}
	if !slices.Equal(got, want) {
		t.Errorf("models %v: %v, want %v", ids, got, want)
	}
	vids := []modelid.ID{modelid.StringID(kept.Versions[0].IDStr), modelid.StringID(kept.Versions[1].IDStr), modelid.IntID(kept.Versions[1].ID)}
	got, _, err = st.Check(ctx, modelid.KindVersion, vids, after)
	if err != nil {
		t.Fatal(err)
	}
	want = []inventory.Presence{inventory.Absent, inventory.Present, inventory.Undecided}
	if !slices.Equal(got, want) {
		t.Errorf("versions: %v, want %v (an int version ID with no known pair is undecided)", got, want)
	}
	later, err := st.Stamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Check(ctx, modelid.KindModel, ids, later); !errors.Is(err, inventory.ErrNoSnapshot) {
		t.Errorf("Check for a loss after the snapshot: %v, want ErrNoSnapshot", err)
	}
}

// TestVerifierSettlesOnceForEveryone: two tasks want a listing; one Once
// takes a single V1 listing that answers both.
func TestVerifierSettlesOnceForEveryone(t *testing.T) {
	b := setup(t, qianfantest.Generate{Models: 150, Versions: 1, Seed: 4})
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	quiet := false
	v := inventory.NewVerifier(rdb, b.qc, inventory.VerifierConfig{MaxWait: time.Hour, Quiet: func(context.Context) bool { return quiet }})
	m := b.inv.Models[3]
	if _, err := b.qc.BatchDeleteModels(ctx, qianfan.IntIDs{m.ID}); err != nil {
		t.Fatal(err)
	}
	lost, err := inventory.NewStore(rdb).Stamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := inventory.NewStore(rdb).Want(ctx, "t1", modelid.KindModel, []modelid.ID{modelid.IntID(m.ID)}, lost, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := inventory.NewStore(rdb).Want(ctx, "t2", modelid.KindModel, []modelid.ID{modelid.StringID(b.inv.Models[4].IDStr)}, lost, time.Now()); err != nil {
		t.Fatal(err)
	}
	reads := b.fake.Stats().Reads
	if err := v.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if b.fake.Stats().Reads != reads {
		t.Fatal("a listing was taken while the queue is busy and the wait is not over")
	}
	quiet = true
	if err := v.Once(ctx); err != nil {
		t.Fatal(err)
	}
	pages := b.fake.Stats().Reads - reads
	if pages != 2 { // 150 models, 100 a page, V1 only
		t.Errorf("the listing took %d reads, want 2", pages)
	}
	st := inventory.NewStore(rdb)
	got, _, err := st.Check(ctx, modelid.KindModel, []modelid.ID{modelid.IntID(m.ID), modelid.StringID(b.inv.Models[4].IDStr)}, lost)
	if err != nil || !slices.Equal(got, []inventory.Presence{inventory.Absent, inventory.Present}) {
		t.Errorf("answers %v, %v; want absent, present", got, err)
	}
	if err := v.Once(ctx); err != nil || b.fake.Stats().Reads != reads+pages {
		t.Errorf("a second Once listed again (%v)", err)
	}
}

// TestParentsAndUsers: a saved snapshot teaches each version's model; the
// users are services of both protocol versions and unfinished batch tasks.
func TestParentsAndUsers(t *testing.T) {
	b := setup(t, qianfantest.Generate{Models: 30, Versions: 2, Services: 6, BatchTasks: 20, Seed: 4})
	ctx := context.Background()
	s, err := inventory.Read(ctx, b.qc, inventory.SourceV2|inventory.SourceServices)
	if err != nil {
		t.Fatal(err)
	}
	st := inventory.NewStore(redistest.Start(t).Client(t))
	if s.Seq, err = st.Stamp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	m := b.inv.Models[3]
	got, err := st.Parents(ctx, []string{m.Versions[0].IDStr, m.Versions[1].IDStr, "amv-unknown"})
	if err != nil || len(got) != 2 || got[m.Versions[0].IDStr] != m.IDStr || got[m.Versions[1].IDStr] != m.IDStr {
		t.Errorf("Parents: %v, %v", got, err)
	}
	kinds := map[inventory.UserKind]int{}
	protocols := map[int]int{}
	for _, u := range s.Services {
		kinds[u.Kind]++
		if u.Kind == inventory.KindService {
			protocols[u.Protocol]++
		}
	}
	active := 0
	for _, task := range b.inv.BatchTasks {
		if slices.Contains(qianfan.TaskActiveStates, task.Status) && task.Version != "" {
			active++
		}
	}
	if kinds[inventory.KindService] != 6 || kinds[inventory.KindBatchTask] != active || active == 0 || protocols[1] != 3 || protocols[2] != 3 {
		t.Errorf("users by kind %v, services by protocol %v; want 6 services (3 of each), %d tasks", kinds, protocols, active)
	}
}

// TestNamesOnlyFromV1: a model's name is kept for reads by name only when
// V1's listing showed the model (V2 alone may list models V1 does not);
// int IDs find it through their string form.
func TestNamesOnlyFromV1(t *testing.T) {
	b := setup(t, qianfantest.Generate{Models: 30, Seed: 4})
	ctx := context.Background()
	st := inventory.NewStore(redistest.Start(t).Client(t))
	save := func(src inventory.Source) {
		t.Helper()
		seq, err := st.Stamp(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s, err := inventory.Read(ctx, b.qc, src)
		if err != nil {
			t.Fatal(err)
		}
		s.Seq = seq
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	m := b.inv.Models[12]
	ids := []modelid.ID{modelid.StringID(m.IDStr), modelid.IntID(m.ID)}
	save(inventory.SourceV2)
	if got, err := st.V1Names(ctx, ids); err != nil || len(got) != 0 {
		t.Fatalf("after a V2 listing: names %v (%v), want none", got, err)
	}
	save(inventory.SourceV2 | inventory.SourceV1)
	got, err := st.V1Names(ctx, ids)
	if err != nil || got[ids[0]] != m.Name || got[ids[1]] != m.Name {
		t.Fatalf("after a V1 listing: names %v (%v), want %q for both forms", got, err, m.Name)
	}
	if pages, err := st.ListingPages(ctx); err != nil || pages != 1 {
		t.Errorf("listing pages %d (%v), want 1 for 30 models", pages, err)
	}
}
