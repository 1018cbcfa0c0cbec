package httpapi

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/producer"
)

// StatePending marks an ID enqueued (or requeued) through the API whose
// outcome is not known yet. The workers never write it: IDs enqueued with
// cmd/enqueue or the producer package show "unknown" until their outcome.
const StatePending = "pending"

// keyID is the ledger's per-ID hash prefix (tasks' keyID); a test checks
// that tasks.Ledger.Lookup reads what markPending writes.
const keyID = "qfpurge:id:"

// markScript sets state "pending" on an ID's ledger hash unless the ledger
// holds an outcome written since the request started. It is a
// compare-and-set against a snapshot taken before enqueuing (ARGV[3..5]:
// state, at, task): a "dead" record still equal to the snapshot is the old
// outcome of an ID now enqueued again and is replaced; a "dead" record that
// changed is the new outcome and stays, as do "deleted" and "presumed".
var markScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'at', 'task')
local s = cur[1]
if s == false or s == 'pending' or
   (s == 'dead' and ARGV[3] == 'dead' and (cur[2] or '') == ARGV[4] and (cur[3] or '') == ARGV[5]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'state', 'pending', 'at', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

func pendingKey(k modelid.Kind, id modelid.ID) string {
	return keyID + string(k) + ":" + string(id.Type()) + ":" + id.String()
}

// snapshot is an ID's ledger fields before enqueuing.
type snapshot struct{ state, at, task string }

// snapshotStates reads state, at and task of each ID, pipelined.
func snapshotStates(ctx context.Context, rdb redis.UniversalClient, k modelid.Kind, ids []modelid.ID) ([]snapshot, error) {
	pipe := rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, pendingKey(k, id), "state", "at", "task")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read ledger states: %w", err)
	}
	out := make([]snapshot, len(ids))
	for i, c := range cmds {
		v := c.Val()
		str := func(j int) string { s, _ := v[j].(string); return s }
		out[i] = snapshot{str(0), str(1), str(2)}
	}
	return out, nil
}

// markPending records ids as pending, one script call per key (so it works
// on Redis Cluster), pipelined. before is snapshotStates' answer from before
// enqueuing. It returns how many were marked.
func markPending(ctx context.Context, rdb redis.UniversalClient, k modelid.Kind, ids []modelid.ID, before []snapshot, ttl time.Duration) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if err := markScript.Load(ctx, rdb).Err(); err != nil {
		return 0, fmt.Errorf("mark pending: %w", err)
	}
	ttlSec := strconv.FormatInt(int64(max(ttl, time.Second)/time.Second), 10)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	pipe := rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		b := before[i]
		cmds[i] = markScript.EvalSha(ctx, pipe, []string{pendingKey(k, id)}, now, ttlSec, b.state, b.at, b.task)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("mark pending: %w", err)
	}
	n := 0
	for _, c := range cmds {
		if v, _ := c.Int(); v == 1 {
			n++
		}
	}
	return n, nil
}

// pendingEnqueuer enqueues through the producer, then marks the IDs pending.
type pendingEnqueuer struct {
	a      *API
	marked int
	warn   error
}

func (p *pendingEnqueuer) Enqueue(ctx context.Context, r producer.Request) (producer.Receipt, error) {
	if err := producer.Validate(r); err != nil {
		return producer.Receipt{}, err
	}
	ids := modelid.Dedupe(r.IDs)
	before, snapErr := snapshotStates(ctx, p.a.d.Redis, r.Kind, ids)
	rc, err := p.a.d.Producer.Enqueue(ctx, r)
	if err != nil {
		return rc, err
	}
	if snapErr != nil {
		p.warn = snapErr
		p.a.log.Warn("enqueued, but could not mark the IDs pending", "kind", r.Kind, "ids", len(ids), "err", snapErr)
		return rc, nil
	}
	ttl := p.a.cfg.PendingTTL
	if d := time.Until(r.ProcessAt); d > 0 {
		ttl += d
	}
	n, err := markPending(ctx, p.a.d.Redis, r.Kind, ids, before, ttl)
	p.marked += n
	if err != nil {
		// Enqueued all the same: the outcome will still be recorded.
		p.warn = err
		p.a.log.Warn("enqueued, but could not mark the IDs pending", "kind", r.Kind, "ids", len(r.IDs), "err", err)
	}
	return rc, nil
}
