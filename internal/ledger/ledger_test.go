package ledger

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

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
	all := []State{"", StatePending, StateDeleted, StatePresumed, StateDead, StateProtected, StateCancelled, StateRefused}
	allowed := map[State][]State{
		"":             all[1:],
		StatePending:   all[1:],
		StateDead:      all[1:],
		StateProtected: all[1:],
		StateCancelled: all[1:],
		StateRefused:   all[1:],
		StatePresumed:  {StateDeleted, StatePresumed},
		StateDeleted:   {StateDeleted},
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

// raceHook holds a client's writing pipelines until another writer has
// finished, and says when the client started: the interleaving in which a
// read-then-write ledger lets two workers both pass the transition check.
type raceHook struct {
	started   chan struct{}
	once      sync.Once
	otherDone chan struct{}
}

func (h *raceHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *raceHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *raceHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		writes := slices.ContainsFunc(cmds, func(c redis.Cmder) bool {
			n := c.Name()
			return n == "evalsha" || n == "eval" || n == "hset"
		})
		if !writes {
			err := next(ctx, cmds)
			h.once.Do(func() { close(h.started) })
			return err
		}
		h.once.Do(func() { close(h.started) })
		<-h.otherDone
		return next(ctx, cmds)
	}
}

// TestWriteChecksAndWritesInOneStep: a worker writing "dead" for IDs whose
// state it has already begun to check, while another worker records them
// deleted, never overwrites the deletion: check and write are one step.
func TestWriteChecksAndWritesInOneStep(t *testing.T) {
	srv := redistest.Start(t)
	quiet := Config{Logger: slog.New(slog.DiscardHandler)}
	slow := srv.Client(t)
	hook := &raceHook{started: make(chan struct{}), otherDone: make(chan struct{})}
	slow.AddHook(hook)
	a, b := New(srv.Client(t), quiet), New(slow, quiet)
	ctx := context.Background()
	var ids []modelid.ID
	for n := range 200 {
		ids = append(ids, modelid.IntID(int64(n+1)))
	}
	outs := func(st State, task string) []Outcome {
		var o []Outcome
		for _, id := range ids {
			o = append(o, Outcome{Kind: modelid.KindModel, ID: id, State: st, TaskID: task, Code: 500001})
		}
		return o
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.Write(ctx, outs(StateDead, "late-verdict"))
		done <- err
	}()
	<-hook.started
	if _, err := a.Write(ctx, outs(StateDeleted, "deleter")); err != nil {
		t.Fatal(err)
	}
	close(hook.otherDone)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs, err := a.LookupMany(ctx, modelid.KindModel, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.State != StateDeleted {
			t.Fatalf("ID %s is %q after a deletion and a late dead verdict raced; want deleted", r.ID, r.State)
		}
	}
	dead, err := deadletter.NewStore(srv.Client(t)).All(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 0 {
		t.Fatalf("%d dead letters written for deleted IDs", len(dead))
	}
}

// TestWriteConcurrentWritersEndDeleted: many writers racing deleted and
// dead verdicts for the same IDs leave every ID deleted.
func TestWriteConcurrentWritersEndDeleted(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var ids []modelid.ID
	for n := range 300 {
		ids = append(ids, modelid.IntID(int64(n+1)))
	}
	var wg sync.WaitGroup
	for w := range 8 {
		l := New(srv.Client(t), Config{Logger: slog.New(slog.DiscardHandler)})
		st := StateDead
		if w%2 == 0 {
			st = StateDeleted
		}
		wg.Go(func() {
			for _, id := range ids {
				if _, err := l.Write(ctx, []Outcome{{Kind: modelid.KindModel, ID: id, State: st}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	recs, err := New(srv.Client(t), Config{}).LookupMany(ctx, modelid.KindModel, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.State != StateDeleted {
			t.Fatalf("ID %s ended %q", r.ID, r.State)
		}
	}
}
