package tasks

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

func TestGroupNames(t *testing.T) {
	names := AllGroupNames()
	if len(names) != 4*MaxShards {
		t.Fatalf("%d group names, want %d", len(names), 4*MaxShards)
	}
	for _, n := range names {
		k, ty, s, err := ParseGroupName(n)
		if err != nil {
			t.Fatal(err)
		}
		if GroupName(k, ty, s) != n {
			t.Errorf("round trip of %q gave %q", n, GroupName(k, ty, s))
		}
	}
	if _, _, _, err := ParseGroupName("model/int/64"); err == nil {
		t.Error("shard 64 accepted")
	}
}

func TestShardSpreadsIDs(t *testing.T) {
	counts := make([]int, 16)
	for n := int64(1); n <= 16000; n++ {
		counts[Shard(modelid.IntID(n), 16)]++
	}
	for s, c := range counts {
		if c < 700 || c > 1300 {
			t.Errorf("shard %d got %d of 16000 IDs; want about 1000", s, c)
		}
	}
}

func TestAggregatorMergesAndKeepsUnreadable(t *testing.T) {
	a := &Aggregator{}
	job := func(ids ...modelid.ID) *asynq.Task {
		b, _ := json.Marshal(Payload{Kind: modelid.KindModel, IDs: ids})
		return asynq.NewTask(TypeDelete, b)
	}
	got := a.Aggregate("model/int/00", []*asynq.Task{
		job(modelid.IntID(1), modelid.IntID(2)),
		job(modelid.IntID(2), modelid.IntID(3)),
		asynq.NewTask(TypeDelete, []byte("not json")),
		job(),
	})
	if got == nil {
		t.Fatal("Aggregate returned nil")
	}
	if got.Type() != TypeDeleteBatch {
		t.Errorf("type %q, want %q", got.Type(), TypeDeleteBatch)
	}
	p, err := DecodePayload(got.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.IntID(3)}, p.IDs, cmp.AllowUnexported(modelid.ID{})); diff != "" {
		t.Errorf("IDs (-want +got):\n%s", diff)
	}
	if len(p.Rejected) != 2 {
		t.Errorf("rejected %q, want the two unreadable jobs", p.Rejected)
	}
	if got := a.Aggregate("model/int/00", nil); got == nil {
		t.Error("Aggregate of no tasks returned nil")
	}
}

// TestAggregatorKeepsEachJobsScope: jobs of two tokens merged into one
// batch keep each one's name scope; jobs of one token keep it whole.
func TestAggregatorKeepsEachJobsScope(t *testing.T) {
	a := &Aggregator{}
	job := func(by string, names []string, ids ...modelid.ID) *asynq.Task {
		b, _ := json.Marshal(Payload{Kind: modelid.KindModel, IDs: ids, RequestedBy: by, Key: by + "-key", Names: names})
		return asynq.NewTask(TypeDelete, b)
	}
	p, err := DecodePayload(a.Aggregate("model/int/00", []*asynq.Task{
		job("ci", []string{"ci-*"}, modelid.IntID(1)),
		job("ops", nil, modelid.IntID(2)),
	}).Payload())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.NamesOf(modelid.IntID(1)); !slices.Equal(got, []string{"ci-*"}) {
		t.Errorf("ci's ID scope %q, want [ci-*]", got)
	}
	if got := p.NamesOf(modelid.IntID(2)); got != nil {
		t.Errorf("ops's ID scope %q, want none", got)
	}
	p, err = DecodePayload(a.Aggregate("model/int/00", []*asynq.Task{
		job("ci", []string{"ci-*"}, modelid.IntID(1)),
		job("ci", []string{"ci-*"}, modelid.IntID(2)),
	}).Payload())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Names, []string{"ci-*"}) || len(p.Origins) != 0 {
		t.Errorf("one token's jobs: names %q, origins %+v; want [ci-*] on the batch", p.Names, p.Origins)
	}
}
