package enqueue

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// Asynq's client makes one round trip per task. A Stream writes the same
// keys and fields with the same Lua as Asynq v0.26 (copied from its
// internal/rdb), up to pipelineDepth tasks per round trip; the package
// tests enqueue through both and compare what Redis holds.
const pipelineDepth = 256

var (
	// enqueueCmd: a ready task.
	enqueueScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
	return 0
end
redis.call("HSET", KEYS[1],
           "msg", ARGV[1],
           "state", "pending",
           "pending_since", ARGV[3])
redis.call("LPUSH", KEYS[2], ARGV[2])
return 1
`)
	// scheduleCmd: a delayed task.
	scheduleScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
	return 0
end
redis.call("HSET", KEYS[1],
           "msg", ARGV[1],
           "state", "scheduled")
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[3])
return 1
`)
	// addToGroupCmd: a task waiting in its group. It answers the group's
	// size where Asynq's answers 1, so the producer knows when a group
	// holds a batch.
	groupScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
	return 0
end
redis.call("HSET", KEYS[1],
           "msg", ARGV[1],
           "state", "aggregating",
	       "group", ARGV[4])
redis.call("ZADD", KEYS[2], ARGV[3], ARGV[2])
redis.call("SADD", KEYS[3], ARGV[4])
return redis.call("ZCARD", KEYS[2])
`)
)

// write is one task on its way into a pipeline.
type write struct {
	script *redis.Script
	keys   []string
	args   []any
	b      Batch
	keyed  bool // its task ID comes from Request.Key: a conflict is a repeat
	n      int  // its number among the request's batches of its ID type
	ids    []modelid.ID
	cmd    *redis.Cmd
}

// prepare builds the task for ids as Asynq's client would build it from
// tasks.NewBatchTask or tasks.NewDeleteTask: the same message, the same
// keys. ready says it skips aggregation; n numbers it for Request.Key.
func (p *Producer) prepare(r Request, ids []modelid.ID, ready bool, n int, now time.Time) write {
	typ := ids[0].Type()
	w := write{b: Batch{IDType: string(typ), IDs: len(ids)}, n: n, ids: ids}
	id := ""
	if r.Key != "" && !r.generated {
		id, w.keyed = taskID(r.Key, typ, n), true
	} else {
		// A generated key makes nothing idempotent: random task IDs, which
		// asynqmon can delete one by one (it cannot when they hold '/').
		id = uuid.NewString()
	}
	w.b.TaskID = id
	const q = asynqlayout.Queue
	m := asynqlayout.Message{
		Type: tasks.TypeDeleteBatch, ID: id, Queue: q, Retry: p.opt.MaxRetry,
		Timeout: int64(p.opt.Timeout.Seconds()), Retention: int64(p.opt.Retention.Seconds()),
		Payload: appendPayload(make([]byte, 0, 64+12*len(ids)), r, ids),
	}
	switch {
	case !ready:
		m.Type = tasks.TypeDelete
		m.Group = tasks.GroupName(r.Kind, typ, tasks.Shard(ids[0], p.cfg.Shards))
		w.b.Group = m.Group
		w.script = groupScript
		w.keys = []string{asynqlayout.Task(q, id), asynqlayout.Group(q, m.Group), asynqlayout.Groups(q)}
		w.args = []any{m.AppendEncode(make([]byte, 0, len(m.Payload)+128)), id, now.Unix(), m.Group}
		return w
	case !r.ProcessAt.IsZero():
		// Asynq keeps whole seconds; say the time it will use.
		w.b.At = r.ProcessAt.UTC().Truncate(time.Second)
	}
	if r.ProcessAt.After(now) {
		w.script = scheduleScript
		w.keys = []string{asynqlayout.Task(q, id), asynqlayout.Scheduled(q)}
		w.args = []any{m.AppendEncode(make([]byte, 0, len(m.Payload)+128)), r.ProcessAt.Unix(), id}
		return w
	}
	w.script = enqueueScript
	w.keys = []string{asynqlayout.Task(q, id), asynqlayout.Pending(q)}
	w.args = []any{m.AppendEncode(make([]byte, 0, len(m.Payload)+128)), id, now.UnixNano()}
	return w
}

// send writes ws in one round trip (two when Redis has not seen a script
// yet). Each write's cmd holds its own answer: one that failed leaves the
// others' standing.
func (p *Producer) send(ctx context.Context, ws []write) {
	pipe := p.rdb.Pipeline()
	var listed *redis.IntCmd
	if !p.queueListed.Load() {
		// Asynq's client names the queue once, before its first task.
		listed = pipe.SAdd(ctx, asynqlayout.Queues, asynqlayout.Queue)
	}
	for i := range ws {
		ws[i].cmd = ws[i].script.EvalSha(ctx, pipe, ws[i].keys, ws[i].args...)
	}
	_, _ = pipe.Exec(ctx)
	if listed != nil && listed.Err() == nil {
		p.queueListed.Store(true)
	}
	// A script Redis does not hold yet (a fresh or restarted server) fails
	// without running: load it and send those writes again.
	var again []int
	for i := range ws {
		if e := ws[i].cmd.Err(); e != nil && redis.HasErrorPrefix(e, "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return
	}
	pipe = p.rdb.Pipeline()
	for _, i := range again {
		ws[i].cmd = ws[i].script.Eval(ctx, pipe, ws[i].keys, ws[i].args...)
	}
	_, _ = pipe.Exec(ctx)
}

// appendPayload appends the JSON of tasks.Payload{Kind, IDs, Run, Rule,
// DeleteInUse, RequestedBy, Key, Names, Traceparent, Tracestate} exactly as encoding/json writes it, without reflection: a
// large input spends a good part of its time here.
func appendPayload(b []byte, r Request, ids []modelid.ID) []byte {
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, string(r.Kind))
	b = append(b, `,"model_ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		if n, ok := id.Int(); ok {
			b = strconv.AppendInt(b, n, 10)
		} else {
			b = appendJSONString(b, id.String())
		}
	}
	b = append(b, ']')
	if r.Run != "" {
		b = append(b, `,"run":`...)
		b = appendJSONString(b, r.Run)
	}
	if r.Rule != "" {
		b = append(b, `,"rule":`...)
		b = appendJSONString(b, r.Rule)
	}
	if r.DeleteInUse {
		b = append(b, `,"delete_in_use":true`...)
	}
	if r.RequestedBy != "" {
		b = append(b, `,"requested_by":`...)
		b = appendJSONString(b, r.RequestedBy)
	}
	if r.Key != "" {
		b = append(b, `,"key":`...)
		b = appendJSONString(b, r.Key)
	}
	if len(r.NameScope) > 0 {
		b = append(b, `,"names":[`...)
		for i, g := range r.NameScope {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, g)
		}
		b = append(b, ']')
	}
	if r.traceparent != "" {
		b = append(b, `,"traceparent":`...)
		b = appendJSONString(b, r.traceparent)
	}
	if r.tracestate != "" {
		b = append(b, `,"tracestate":`...)
		b = appendJSONString(b, r.tracestate)
	}
	return append(b, '}')
}

// appendJSONString quotes s as encoding/json does. Valid string IDs and
// kinds need no escaping; anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
