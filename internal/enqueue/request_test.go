package enqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// TestReadRequest: a keyed request of 250 IDs (three batches) enqueued
// twice is recorded once; its IDs are counted by their ledger state, an
// earlier outcome of another request counting pending unless it is a
// deletion; an unkeyed request is not recorded.
func TestReadRequest(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	l := ledger.New(rdb, ledger.Config{})
	var ids []modelid.ID
	for i := range 250 {
		ids = append(ids, modelid.IntID(int64(i+1)))
	}
	// Outcomes of an earlier request, written before this one is made.
	old := time.Now().Add(-time.Hour)
	if _, err := l.Write(ctx, []ledger.Outcome{
		{Kind: modelid.KindModel, ID: ids[0], State: ledger.StateDeleted, Key: "earlier", At: old},
		{Kind: modelid.KindModel, ID: ids[1], State: ledger.StateDead, Key: "earlier", At: old},
	}); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, rdb, enqueue.Config{})
	r := enqueue.Request{Kind: modelid.KindModel, IDs: ids, Key: "big", RequestedBy: "ci", ProcessAt: time.Now().Add(time.Hour)}
	for range 2 {
		if _, err := p.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Write(ctx, []ledger.Outcome{
		{Kind: modelid.KindModel, ID: ids[2], State: ledger.StateRefused, Key: "big"},
		{Kind: modelid.KindModel, ID: ids[3], State: ledger.StateProtected, Key: "big"},
	}); err != nil {
		t.Fatal(err)
	}
	st, err := enqueue.ReadRequest(ctx, rdb, l, "big", 300)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"pending": 247, "deleted": 1, "refused": 1, "protected": 1, "dead": 0, "presumed": 0, "cancelled": 0}
	for s, n := range want {
		if st.States[s] != n {
			t.Errorf("%s: %d, want %d", s, st.States[s], n)
		}
	}
	if st.IDs != 250 || st.RequestedBy != "ci" || st.Kind != modelid.KindModel || st.ProcessAt.IsZero() || len(st.ByState["pending"]) != 247 || st.Truncated {
		t.Errorf("status %+v", st)
	}
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids[:3]}); err != nil {
		t.Fatal(err)
	}
	if keys := rdb.Keys(ctx, "qfpurge:req:*").Val(); len(keys) != 2 {
		t.Errorf("request records %q, want big's two keys only (an unkeyed request is not recorded)", keys)
	}
	if _, err := enqueue.ReadRequest(ctx, rdb, l, "nope", 0); err != enqueue.ErrNoRequest {
		t.Errorf("unknown key: %v, want ErrNoRequest", err)
	}
}
