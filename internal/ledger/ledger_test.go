package ledger

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// TestMarkPendingKeepsNewOutcomes: an outcome written between the snapshot
// and the marking (a fast worker) is kept; the ledger reads what is marked.
func TestMarkPendingKeepsNewOutcomes(t *testing.T) {
	l := New(redistest.Start(t).Client(t), Config{})
	ctx := context.Background()
	old := time.Now().Add(-time.Hour)
	ids := []modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.IntID(3), modelid.IntID(4), modelid.IntID(5)}
	if _, err := l.Write(ctx, []Outcome{
		{Kind: modelid.KindModel, ID: ids[1], State: StateDead, TaskID: "old", At: old},
		{Kind: modelid.KindModel, ID: ids[2], State: StateDead, TaskID: "old", At: old},
		{Kind: modelid.KindModel, ID: ids[3], State: StatePresumed, TaskID: "old", At: old},
	}); err != nil {
		t.Fatal(err)
	}
	before, err := l.Snapshots(ctx, modelid.KindModel, ids)
	if err != nil {
		t.Fatal(err)
	}
	// The worker is faster than the marking for IDs 3 and 5.
	if _, err := l.Write(ctx, []Outcome{
		{Kind: modelid.KindModel, ID: ids[2], State: StateDead, TaskID: "new", At: old},
		{Kind: modelid.KindModel, ID: ids[4], State: StateDeleted, TaskID: "new", LogID: "L"},
	}); err != nil {
		t.Fatal(err)
	}
	n, err := l.MarkPending(ctx, modelid.KindModel, ids, before, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var got []State
	for _, id := range ids {
		rec, ok, err := l.Lookup(ctx, modelid.KindModel, id)
		if err != nil || !ok {
			t.Fatalf("lookup %s: %v %v", id, ok, err)
		}
		got = append(got, rec.State)
	}
	want := []State{StatePending, StatePending, StateDead, StatePresumed, StateDeleted}
	if diff := cmp.Diff(want, got); diff != "" || n != 2 {
		t.Fatalf("marked %d, states (-want +got)\n%s", n, diff)
	}
}

func TestStateTransitions(t *testing.T) {
	all := []State{"", StatePending, StateDeleted, StatePresumed, StateDead}
	allowed := map[State][]State{
		"":            all[1:],
		StatePending:  all[1:],
		StateDead:     all[1:],
		StatePresumed: {StateDeleted, StatePresumed},
		StateDeleted:  {StateDeleted},
	}
	for _, from := range all {
		for _, to := range all[1:] {
			want := slices.Contains(allowed[from], to)
			if got := from.CanBecome(to); got != want {
				t.Errorf("%q.CanBecome(%q) = %v, want %v", from, to, got, want)
			}
		}
	}
}

// TestWriteKeepsDeletedFinal: a dead verdict that arrives after another
// batch deleted the same ID is dropped, with neither a dead letter nor an
// event.
func TestWriteKeepsDeletedFinal(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	l := New(rdb, Config{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	id := modelid.IntID(585)
	if _, err := l.Write(ctx, []Outcome{{Kind: modelid.KindModel, ID: id, State: StateDeleted, LogID: "L1", TaskID: "a"}}); err != nil {
		t.Fatal(err)
	}
	written, err := l.Write(ctx, []Outcome{
		{Kind: modelid.KindModel, ID: id, State: StateDead, Code: 500001, TaskID: "b"},
		{Kind: modelid.KindModel, ID: modelid.IntID(586), State: StateDead, Code: 500001, TaskID: "b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 1 || written[0].ID != modelid.IntID(586) {
		t.Errorf("written %+v, want only ID 586", written)
	}
	rec, _, err := l.Lookup(ctx, modelid.KindModel, id)
	if err != nil || rec.State != StateDeleted || rec.LogID != "L1" {
		t.Errorf("record %+v, %v; want still deleted by L1", rec, err)
	}
	if n := rdb.XLen(ctx, deadletter.Stream).Val(); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
	if n := rdb.XLen(ctx, EventStream).Val(); n != 2 {
		t.Errorf("%d events, want 2 (deleted 585, dead 586)", n)
	}
}
