package ledger

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Snapshot is an ID's record before it is enqueued again, so MarkPending can
// tell an old outcome from one written since.
type Snapshot struct{ state, at, task string }

// Snapshots reads state, at and task of each ID, with one round trip.
func (l *Ledger) Snapshots(ctx context.Context, k modelid.Kind, ids []modelid.ID) ([]Snapshot, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, idKey(k, id), "state", "at", "task")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: read states: %w", err)
	}
	out := make([]Snapshot, len(ids))
	for i, c := range cmds {
		v := c.Val()
		str := func(j int) string { s, _ := v[j].(string); return s }
		out[i] = Snapshot{str(0), str(1), str(2)}
	}
	return out, nil
}

// markScript sets state pending on an ID's hash unless the ledger holds an
// outcome written since the snapshot (ARGV[3..5]: state, at, task). A dead
// record still equal to the snapshot is the old outcome of an ID now enqueued
// again and is replaced; a dead record that changed is the new outcome and
// stays, as do deleted and presumed (State.CanBecome).
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

// MarkPending records ids as pending for ttl (at least a second), one script
// call per key (so it works on Redis Cluster), pipelined. before is
// Snapshots' answer from before enqueuing. It returns how many were marked.
func (l *Ledger) MarkPending(ctx context.Context, k modelid.Kind, ids []modelid.ID, before []Snapshot, ttl time.Duration) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if err := markScript.Load(ctx, l.rdb).Err(); err != nil {
		return 0, fmt.Errorf("ledger: mark pending: %w", err)
	}
	ttlSec := strconv.FormatInt(int64(max(ttl, time.Second)/time.Second), 10)
	now := strconv.FormatInt(l.cfg.Clock.Now().Unix(), 10)
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		b := before[i]
		cmds[i] = markScript.EvalSha(ctx, pipe, []string{idKey(k, id)}, now, ttlSec, b.state, b.at, b.task)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("ledger: mark pending: %w", err)
	}
	n := 0
	for _, c := range cmds {
		if v, _ := c.Int(); v == 1 {
			n++
		}
	}
	return n, nil
}
