package enqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// Asynq merges a group only on its aggregation tick, once the group has
// been quiet for the grace period or holds the worker's group-max-size: a
// burst of small jobs waits seconds for its first batch. So the producer
// whose job brings a group to a full batch of jobs takes that batch out at
// once, the way Asynq's aggregator does (an aggregation set, then one
// merged task), leaving the grace period to trickles.
//
// Taking and committing are two atomic steps. claimScript moves the
// group's oldest jobs into an aggregation set with a deadline, exactly as
// Asynq's aggregation check does, so no other producer or worker can take
// them; commitScript enqueues the merged batch and deletes the set and its
// jobs in one step, only while the set is still there. A producer that
// dies between the two leaves a set that Asynq's recoverer puts back into
// the group after the deadline, so no job is lost, and none is merged
// twice.

// claimTimeout is how long a taken set is the producer's; Asynq gives its
// own aggregator the same.
const claimTimeout = 2 * time.Minute

// claimScript takes the ARGV[1] oldest jobs of group KEYS[1] into the
// aggregation set KEYS[2] when the group holds that many, registers the set
// in KEYS[3] with deadline ARGV[2], unregisters the group from KEYS[4]
// (ARGV[3]) when it is left empty, as Asynq does, and answers the jobs'
// messages (task hashes under prefix ARGV[4]).
var claimScript = redis.NewScript(`
local n = tonumber(ARGV[1])
local size = redis.call("ZCARD", KEYS[1])
if size < n then
	return {}
end
local res = redis.call("ZRANGE", KEYS[1], 0, n-1, "WITHSCORES")
for i=1, table.getn(res)-1, 2 do
	redis.call("ZADD", KEYS[2], tonumber(res[i+1]), res[i])
end
redis.call("ZREMRANGEBYRANK", KEYS[1], 0, n-1)
redis.call("ZADD", KEYS[3], ARGV[2], KEYS[2])
if size == n then
	redis.call("SREM", KEYS[4], ARGV[3])
end
local msgs = {}
for i=1, table.getn(res)-1, 2 do
	table.insert(msgs, redis.call("HGET", ARGV[4] .. res[i], "msg"))
end
return msgs
`)

// commitScript enqueues the merged task (KEYS[3], KEYS[4]; ARGV[1..3] as
// enqueueScript's) and deletes aggregation set KEYS[1], its jobs (prefix
// ARGV[4]) and its entry in KEYS[2], if the set still exists; 0 if Asynq's
// recoverer took it back first.
var commitScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return 0
end
if redis.call("EXISTS", KEYS[3]) == 1 then
	return redis.error_reply("task ID conflict")
end
redis.call("HSET", KEYS[3],
           "msg", ARGV[1],
           "state", "pending",
           "pending_since", ARGV[3])
redis.call("LPUSH", KEYS[4], ARGV[2])
for _, id in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
	redis.call("DEL", ARGV[4] .. id)
end
redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], KEYS[1])
return 1
`)

// cutGroups takes full batches out of the groups that ws filled. The jobs
// are enqueued already: when Redis fails here, they wait for Asynq's
// aggregator (or, after a failed commit, for its recoverer) as they did
// before, so the enqueue itself has not failed.
func (p *Producer) cutGroups(ctx context.Context, ws []write) {
	seen := map[string]bool{}
	for i := range ws {
		w := &ws[i]
		if w.b.Group == "" || seen[w.b.Group] {
			continue
		}
		if size, err := w.cmd.Int64(); err != nil || size < int64(p.cfg.BatchSize) {
			continue
		}
		seen[w.b.Group] = true
		_ = p.cutGroup(ctx, w.b.Group)
	}
}

// cutGroup merges full batches of jobs out of group while it holds them.
func (p *Producer) cutGroup(ctx context.Context, group string) error {
	const q = asynqlayout.Queue
	for {
		set := asynqlayout.AggregationSet(q, group, uuid.NewString())
		now := time.Now()
		raw, err := claimScript.Run(ctx, p.rdb,
			[]string{asynqlayout.Group(q, group), set, asynqlayout.AggregationSets(q), asynqlayout.Groups(q)},
			p.cfg.BatchSize, now.Add(claimTimeout).Unix(), group, asynqlayout.TaskPrefix(q)).StringSlice()
		if err != nil || len(raw) == 0 {
			return err
		}
		jobs := make([]*asynq.Task, 0, len(raw))
		for _, r := range raw {
			m, err := asynqlayout.DecodeMessage([]byte(r))
			if err != nil {
				// Kept as unreadable: the aggregator dead-letters it.
				jobs = append(jobs, asynq.NewTask(tasks.TypeDelete, []byte(r)))
				continue
			}
			jobs = append(jobs, asynq.NewTask(m.Type, m.Payload))
		}
		merged := (&tasks.Aggregator{Options: p.opt}).Aggregate(group, jobs)
		id := uuid.NewString()
		m := asynqlayout.Message{
			Type: merged.Type(), Payload: merged.Payload(), ID: id, Queue: q, Retry: p.opt.MaxRetry,
			Timeout: int64(p.opt.Timeout.Seconds()), Retention: int64(p.opt.Retention.Seconds()),
		}
		// The jobs are out of their group now: finish even if ctx ends.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = commitScript.Run(cctx, p.rdb,
			[]string{set, asynqlayout.AggregationSets(q), asynqlayout.Task(q, id), asynqlayout.Pending(q)},
			m.AppendEncode(make([]byte, 0, len(m.Payload)+128)), id, time.Now().UnixNano(), asynqlayout.TaskPrefix(q)).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("merge a batch out of group %s: %w", group, err)
		}
	}
}
