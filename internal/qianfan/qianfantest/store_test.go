package qianfantest

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestStoreDeletesLazily: deleted models leave every listing order, the
// cached ones included, which stay sorted; a model deleted twice (by both
// of its IDs in one call) is removed once.
func TestStoreDeletesLazily(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inv := &Inventory{}
	for i := range 10 {
		inv.Models = append(inv.Models, Model{ID: int64(100 + i), IDStr: fmt.Sprintf("am-%02d", 9-i), Name: fmt.Sprintf("m%d", i),
			CreateTime: t0.Add(time.Duration(i) * time.Hour), Versions: []Version{{ID: int64(1000 + i), IDStr: fmt.Sprintf("amv-%d", i)}}})
	}
	st := newStore(inv)
	st.v1Order("", false, nil, false) // cache both orders before deleting
	st.v2Order()
	for _, id := range []int64{101, 104, 108} {
		sm := st.model(id)
		if got := st.deleteModel(sm); len(got) != 1 {
			t.Fatalf("deleting %d returned %d versions, want 1", id, len(got))
		}
		if got := st.deleteModel(sm); got != nil {
			t.Fatalf("deleting %d again returned %d versions, want none", id, len(got))
		}
	}
	ints := func(ms []*smodel) (out []int64) {
		for _, sm := range ms {
			out = append(out, sm.m.ID)
		}
		return out
	}
	if got, want := ints(st.v1Order("", false, nil, false)), []int64{109, 107, 106, 105, 103, 102, 100}; !slices.Equal(got, want) {
		t.Errorf("V1 order %v, want %v", got, want)
	}
	if got, want := ints(st.v2Order()), []int64{109, 107, 106, 105, 103, 102, 100}; !slices.Equal(got, want) {
		t.Errorf("V2 order %v, want %v (by string ID)", got, want)
	}
	if got, want := ints(st.v1Order("m", false, nil, true)), []int64{100, 102, 103, 105, 106, 107, 109}; !slices.Equal(got, want) {
		t.Errorf("filtered V1 order %v, want %v", got, want)
	}
	snap := st.snapshot()
	if len(snap.Models) != 7 {
		t.Errorf("snapshot holds %d models, want 7", len(snap.Models))
	}
	if st.model(int64(104)) != nil || st.model("am-05") != nil || st.version(int64(1004)) != nil {
		t.Error("a deleted model or its version is still found by ID")
	}
}
