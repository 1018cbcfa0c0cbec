package tasks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

const keyReconciled = "qfpurge:archive-reconciled-until"

// ReconcileArchive writes dead letters for batches that Asynq archived
// without the handler recording them: a worker that died during a batch's
// last allowed attempt is archived by Asynq's recoverer, which calls no
// handler. It reads only tasks archived since its last run, by the archive's
// score (the archive time), and returns how many IDs it recorded.
func ReconcileArchive(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, l *ledger.Ledger) (int, error) {
	from, err := rdb.Get(ctx, keyReconciled).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	zs, err := rdb.ZRangeByScoreWithScores(ctx, "asynq:{"+asynqlayout.Queue+"}:archived", &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(from, 10), Max: "+inf", Count: 1000,
	}).Result()
	if err != nil {
		return 0, err
	}
	recorded := 0
	last := from
	for _, z := range zs {
		id, _ := z.Member.(string)
		n, err := reconcileTask(ctx, insp, l, id)
		if err != nil {
			return recorded, fmt.Errorf("reconcile archived task %s: %w", id, err)
		}
		recorded += n
		last = max(last, int64(z.Score))
	}
	// Tasks archived within the last second may still follow at the same
	// score: leave that second for the next run.
	if now := time.Now().Unix() - 1; last > now {
		last = now
	}
	if last > from {
		if err := rdb.Set(ctx, keyReconciled, last, 0).Err(); err != nil {
			return recorded, err
		}
	}
	return recorded, nil
}

func reconcileTask(ctx context.Context, insp *asynq.Inspector, l *ledger.Ledger, taskID string) (int, error) {
	info, err := insp.GetTaskInfo(asynqlayout.Queue, taskID)
	if errors.Is(err, asynq.ErrTaskNotFound) {
		return 0, nil // deleted or replayed meanwhile
	}
	if err != nil {
		return 0, err
	}
	p, err := DecodePayload(info.Payload)
	if err != nil {
		return 0, nil // unreadable payloads are dead-lettered by the handler
	}
	ids := modelid.Dedupe(p.IDs)
	recs, err := l.LookupMany(ctx, p.Kind, ids)
	if err != nil {
		return 0, err
	}
	var outs []ledger.Outcome
	for i, id := range ids {
		r := recs[i]
		if r.State == ledger.StateDeleted || r.State == ledger.StatePresumed || (r.State == ledger.StateDead && r.TaskID == taskID) {
			continue
		}
		outs = append(outs, ledger.Outcome{Kind: p.Kind, ID: id, State: ledger.StateDead, TaskID: taskID, Attempts: info.Retried + 1,
			Message: "archived by Asynq after its last attempt was cut short: " + info.LastErr, At: info.LastFailedAt})
	}
	written, err := l.Write(ctx, outs)
	return len(written), err
}
