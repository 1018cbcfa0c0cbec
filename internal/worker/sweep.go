package worker

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
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// sweepScript re-registers groups that hold tasks but are missing from the
// queue's set of groups. Asynq's recoverer puts a crashed worker's
// aggregation set back into its group without re-adding the group's name, and
// the aggregator only visits named groups: the tasks would sit unseen.
// KEYS[1] is the queue's groups set, KEYS[2..] the group keys; ARGV the names.
var sweepScript = redis.NewScript(`
local added = {}
for i = 2, #KEYS do
  if redis.call("EXISTS", KEYS[i]) == 1 then
    if redis.call("SADD", KEYS[1], ARGV[i-1]) == 1 then
      table.insert(added, ARGV[i-1])
    end
  end
end
return added`)

// sweepGroups re-registers stranded groups once and returns their names.
func sweepGroups(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	names := tasks.AllGroupNames()
	keys := make([]string, 0, len(names)+1)
	keys = append(keys, asynqlayout.Groups(asynqlayout.Queue))
	args := make([]any, len(names))
	for i, n := range names {
		keys = append(keys, asynqlayout.Group(asynqlayout.Queue, n))
		args[i] = n
	}
	res, err := sweepScript.Run(ctx, rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("sweep groups: %w", err)
	}
	return res, nil
}

const keyReconciled = "qfpurge:archive-reconciled-until"

// reconcileArchive writes dead letters for batches that Asynq archived
// without the handler recording them: a worker that died during a batch's
// last allowed attempt is archived by Asynq's recoverer, which calls no
// handler. It reads only tasks archived since its last run, by the archive's
// score (the archive time), and returns how many IDs it recorded.
func reconcileArchive(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, l *ledger.Ledger) (int, error) {
	from, err := rdb.Get(ctx, keyReconciled).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	zs, err := rdb.ZRangeByScoreWithScores(ctx, asynqlayout.Archived(asynqlayout.Queue), &redis.ZRangeBy{
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
	p, err := tasks.DecodePayload(info.Payload)
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
