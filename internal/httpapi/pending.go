package httpapi

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/tasks"
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
// already holds an outcome. A "dead" outcome recorded before the request
// started (ARGV[1], Unix seconds) is replaced: the ID was enqueued again.
// A "dead" written since then is the new outcome and stays.
var markScript = redis.NewScript(`
local s = redis.call('HGET', KEYS[1], 'state')
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0') or 0
if s == false or s == 'pending' or (s == 'dead' and at < tonumber(ARGV[1])) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'state', 'pending', 'at', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
`)

func pendingKey(k tasks.Kind, id tasks.ID) string {
	return keyID + string(k) + ":" + string(id.Type()) + ":" + id.String()
}

// markPending records ids as pending, one script call per key (so it works
// on Redis Cluster), pipelined. It returns how many were marked.
func markPending(ctx context.Context, rdb redis.UniversalClient, k tasks.Kind, ids []tasks.ID, started time.Time, ttl time.Duration) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if err := markScript.Load(ctx, rdb).Err(); err != nil {
		return 0, fmt.Errorf("mark pending: %w", err)
	}
	ttlSec := strconv.FormatInt(int64(max(ttl, time.Second)/time.Second), 10)
	start := strconv.FormatInt(started.Unix(), 10)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	pipe := rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		cmds[i] = markScript.EvalSha(ctx, pipe, []string{pendingKey(k, id)}, start, now, ttlSec)
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
	a       *API
	started time.Time
	marked  int
	warn    error
}

func (p *pendingEnqueuer) Enqueue(ctx context.Context, r producer.Request) (producer.Receipt, error) {
	rc, err := p.a.d.Producer.Enqueue(ctx, r)
	if err != nil {
		return rc, err
	}
	ttl := p.a.cfg.PendingTTL
	if d := time.Until(r.ProcessAt); d > 0 {
		ttl += d
	}
	n, err := markPending(ctx, p.a.d.Redis, r.Kind, tasks.Dedupe(r.IDs), p.started, ttl)
	p.marked += n
	if err != nil {
		// Enqueued all the same: the outcome will still be recorded.
		p.warn = err
		p.a.log.Warn("enqueued, but could not mark the IDs pending", "kind", r.Kind, "ids", len(r.IDs), "err", err)
	}
	return rc, nil
}
