package worker

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
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
	recorded, _ := tasks.NewBatchTask(tasks.Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1)}}, tasks.Options{})
	alone, _ := tasks.NewBatchTask(tasks.Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(2), modelid.IntID(3)}}, tasks.Options{})
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

	n, err := reconcileArchive(ctx, rdb, insp, l)
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
	if n, err := reconcileArchive(ctx, rdb, insp, l); err != nil || n != 0 {
		t.Errorf("second run recorded %d (err %v), want 0", n, err)
	}
}

func TestSweepGroupsReRegistersStrandedGroup(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	// A group holding a task whose name is missing from the groups set, as
	// Asynq leaves it after reclaiming a crashed worker's aggregation set.
	job, err := tasks.NewDeleteTask(tasks.Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1)}}, "model/int/03", tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(rdb).EnqueueContext(ctx, job); err != nil {
		t.Fatal(err)
	}
	rdb.SRem(ctx, asynqlayout.Groups(asynqlayout.Queue), "model/int/03")
	added, err := sweepGroups(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"model/int/03"}, added); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	groups, err := asynq.NewInspectorFromRedisClient(rdb).Groups(asynqlayout.Queue)
	if err != nil || len(groups) != 1 || groups[0].Group != "model/int/03" || groups[0].Size != 1 {
		t.Errorf("Asynq sees groups %+v (%v), want model/int/03 with its task", groups, err)
	}
	if added, _ := sweepGroups(ctx, rdb); len(added) != 0 {
		t.Errorf("second sweep added %v, want nothing", added)
	}
}
