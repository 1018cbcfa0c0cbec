package tasks

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

func TestReconcileArchiveRecordsWhatAsynqArchivedAlone(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	l := ledger.New(rdb, ledger.Config{})
	c := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)

	// Two batches end archived: one the handler dead-lettered itself, one
	// archived by Asynq alone (as its recoverer does after a crash).
	recorded, _ := NewBatchTask(Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1)}}, Options{})
	alone, _ := NewBatchTask(Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(2), modelid.IntID(3)}}, Options{})
	for id, tk := range map[string]*asynq.Task{"recorded": recorded, "alone": alone} {
		if _, err := c.EnqueueContext(ctx, tk, asynq.TaskID(id)); err != nil {
			t.Fatal(err)
		}
		if err := insp.ArchiveTask(asynqlayout.Queue, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Write(ctx, []ledger.Outcome{{Kind: modelid.KindModel, ID: modelid.IntID(1), State: ledger.StateDead, Code: 500001, TaskID: "recorded"}}); err != nil {
		t.Fatal(err)
	}
	// ID 3 was deleted by an earlier batch: not a dead letter.
	if _, err := l.Write(ctx, []ledger.Outcome{{Kind: modelid.KindModel, ID: modelid.IntID(3), State: ledger.StateDeleted, TaskID: "other"}}); err != nil {
		t.Fatal(err)
	}

	n, err := ReconcileArchive(ctx, rdb, insp, l)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("recorded %d IDs, want 1 (ID 2)", n)
	}
	dls, _ := deadletter.NewStore(rdb).List(ctx, "", 10)
	if len(dls) != 2 || dls[1].ID != modelid.IntID(2) || dls[1].TaskID != "alone" {
		t.Fatalf("dead letters %+v, want ID 1 then ID 2 from task alone", dls)
	}
	if n, err := ReconcileArchive(ctx, rdb, insp, l); err != nil || n != 0 {
		t.Errorf("second run recorded %d (err %v), want 0", n, err)
	}
}
