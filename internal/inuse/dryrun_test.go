package inuse

import (
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

func TestDryRun(t *testing.T) {
	t.Parallel()
	inv := account()
	inv.Services = []qianfantest.Service{{ID: 1, IDStr: "svco-1", Name: "chat", Status: "Failed", Model: "am-a", Version: "amv-a1", ProtocolVersion: 2}}
	inv.BatchTasks = []qianfantest.BatchTask{{ID: "infer-1", Name: "eval", Status: "Running", Version: "amv-b2", CreateTime: t0}}
	e := setup(t, inv)
	ctx := t.Context()
	// The fleet saw the account once (am-c and amv-c1 among it), then
	// am-c was deleted.
	st := inventory.NewStore(e.rdb)
	snap, err := inventory.Read(ctx, e.qc, inventory.SourceV2)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Seq, err = st.Stamp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := st.Learn(ctx, modelid.KindModel, 200, "am-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.qc.DeleteModelSet(ctx, "am-c"); err != nil {
		t.Fatal(err)
	}
	deletes := e.fake.Stats().Deletes
	v := e.view(Config{})

	models, err := v.DryRun(ctx, modelid.KindModel, []modelid.ID{
		modelid.StringID("am-a"), modelid.StringID("am-b"), modelid.IntID(200), modelid.StringID("am-c"),
		modelid.StringID("am-typo"), modelid.IntID(999)})
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, models, OutcomeInUse, OutcomeInUse, OutcomeInUse, OutcomeGone, OutcomeNotFound, OutcomeCannotTell)
	if u := models[0].Users; len(u) != 1 || u[0] != "service chat (svco-1, protocol v2, Failed)" {
		t.Errorf("am-a users %q", u)
	}
	if u := models[1].Users; len(u) != 1 || u[0] != "batch inference task eval (infer-1, Running) on version amv-b2" {
		t.Errorf("am-b users %q", u)
	}

	versions, err := v.DryRun(ctx, modelid.KindVersion, []modelid.ID{
		modelid.StringID("amv-a2"), modelid.StringID("amv-b2"), modelid.StringID("amv-c1"), modelid.StringID("amv-zz")})
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, versions, OutcomeExists, OutcomeInUse, OutcomeGone, OutcomeNotFound)
	if a := versions[0]; a.Name != "model-a/V2" || a.Model != "am-a" || !a.Created.Equal(t0.Add(-24*time.Hour)) {
		t.Errorf("amv-a2: %+v", a)
	}
	if e.fake.Stats().Deletes != deletes {
		t.Error("a dry run deleted")
	}
	// A listing failing part-way: every ID cannot be told.
	for i := range 120 {
		if err := e.fake.AddService(qianfantest.Service{ID: int64(100 + i), IDStr: "svco-x" + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			Name: "x", Status: "Serving", Model: "am-a"}); err != nil {
			t.Fatal(err)
		}
	}
	e.fake.SetFaults(qianfantest.Faults{FailPages: map[string]int{"DescribeServices": 2}})
	e.clock.Advance(time.Minute)
	again, err := v.DryRun(ctx, modelid.KindModel, []modelid.ID{modelid.StringID("am-b")})
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, again, OutcomeCannotTell)
}

func wantOutcomes(t *testing.T, got []Answer, want ...Outcome) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d answers, want %d", len(got), len(want))
	}
	for i, a := range got {
		if a.Outcome != want[i] {
			t.Errorf("%s: %s (%s), want %s", a.ID, a.Outcome, a.Reason, want[i])
		}
	}
}
