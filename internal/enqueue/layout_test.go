package enqueue_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// TestTasksAreAsynqs enqueues requests of every shape through the Producer
// (pipelined, its own Lua) into one Redis database, then each of its tasks
// again through Asynq's own client (tasks.NewBatchTask, tasks.NewDeleteTask,
// the payload encoded by encoding/json) into another, and compares every
// key, field, member and score. Only times differ: they are checked against
// the clock and masked.
func TestTasksAreAsynqs(t *testing.T) {
	srv := redistest.Start(t)
	ours := srv.Client(t)
	theirs := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 1})
	t.Cleanup(func() { theirs.Close() })
	ctx := context.Background()
	cfg := enqueue.Config{MaxRetry: 7, Timeout: 90 * time.Second, Retention: time.Hour}
	p := newProducer(t, ours, cfg)

	ints := func(from, n int) []modelid.ID {
		var ids []modelid.ID
		for i := range n {
			ids = append(ids, modelid.IntID(int64(from+i)))
		}
		return ids
	}
	strs := func(prefix string, n int) []modelid.ID {
		var ids []modelid.ID
		for i := range n {
			ids = append(ids, modelid.StringID(prefix+strconv.Itoa(i)))
		}
		return ids
	}
	later := time.Now().Add(time.Hour)
	reqs := []enqueue.Request{
		{Kind: modelid.KindModel, IDs: append(ints(1, 250), strs("am-k", 30)...), Key: "keyed"},
		{Kind: modelid.KindModel, IDs: ints(1000, 150)},
		{Kind: modelid.KindVersion, IDs: append(ints(5000, 120), strs("amv-d", 3)...), ProcessAt: later},
		{Kind: modelid.KindVersion, IDs: strs("amv-r", 3), Key: "run:r1", Run: "r1", Rule: "ci \"nightly\" <&>", DeleteInUse: true},
		{Kind: modelid.KindModel, IDs: ints(9000, 1)},
		{Kind: modelid.KindModel, IDs: strs("am-n", 2), Key: "scoped", RequestedBy: "ci", NameScope: []string{"ci-*", "q\"t"}},
	}
	start := time.Now()
	var batches []enqueue.Batch
	for _, r := range reqs {
		rc, err := p.Enqueue(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, rc.Batches...)
	}

	c := asynq.NewClientFromRedisClient(theirs)
	opts := tasks.Options{MaxRetry: cfg.MaxRetry, Timeout: cfg.Timeout, Retention: cfg.Retention}
	for _, b := range batches {
		raw, err := ours.HGet(ctx, asynqlayout.Task(asynqlayout.Queue, b.TaskID), "msg").Bytes()
		if err != nil {
			t.Fatalf("task %s: %v", b.TaskID, err)
		}
		m, err := asynqlayout.DecodeMessage(raw)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := tasks.DecodePayload(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var task *asynq.Task
		extra := []asynq.Option{asynq.TaskID(b.TaskID)}
		if b.Group != "" {
			task, err = tasks.NewDeleteTask(pl, b.Group, opts)
		} else {
			if !b.At.IsZero() {
				extra = append(extra, asynq.ProcessAt(later))
			}
			task, err = tasks.NewBatchTask(pl, opts, extra...)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.EnqueueContext(ctx, task, extra...); err != nil {
			t.Fatal(err)
		}
	}
	end := time.Now()

	if len(batches) != 12 {
		t.Errorf("%d tasks, want 12 (3+1 int and 1 string for keyed, 2 for 150 ints, 2+1 delayed, 1 run, 1 single, 1 scoped)", len(batches))
	}
	want, got := dump(t, theirs, start, end), dump(t, ours, start, end)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Redis after Asynq's client (-) and after the Producer (+):\n%s", diff)
	}
	if len(got) < 10 {
		t.Errorf("only %d keys compared", len(got))
	}
}

// dump reads every key of a database as text. Times written from the clock
// (pending_since, group scores) must lie within [start, end] and are masked.
func dump(t *testing.T, rdb *redis.Client, start, end time.Time) map[string]string {
	t.Helper()
	ctx := context.Background()
	// Asynq's keys: the producer's record of idempotency keys is its own.
	keys, err := rdb.Keys(ctx, "asynq:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	inWindow := func(what string, unix, lo, hi int64) string {
		if unix < lo || unix > hi {
			t.Errorf("%s: time %d outside [%d, %d]", what, unix, lo, hi)
		}
		return "(now)"
	}
	out := map[string]string{}
	for _, k := range keys {
		var v []string
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "hash":
			h := rdb.HGetAll(ctx, k).Val()
			if ns, ok := h["pending_since"]; ok {
				n, _ := strconv.ParseInt(ns, 10, 64)
				h["pending_since"] = inWindow(k+" pending_since", n, start.UnixNano(), end.UnixNano())
			}
			for f, x := range h {
				v = append(v, f+"="+x)
			}
			slices.Sort(v)
		case "list":
			v = rdb.LRange(ctx, k, 0, -1).Val()
		case "set":
			v = rdb.SMembers(ctx, k).Val()
			slices.Sort(v)
		case "zset":
			for _, z := range rdb.ZRangeWithScores(ctx, k, 0, -1).Val() {
				score := strconv.FormatFloat(z.Score, 'f', -1, 64)
				if strings.Contains(k, ":g:") {
					score = inWindow(k+" score", int64(z.Score), start.Unix(), end.Unix())
				}
				v = append(v, fmt.Sprintf("%v@%s", z.Member, score))
			}
		default:
			v = []string{"type " + typ}
		}
		out[k] = strings.Join(v, "\n")
	}
	return out
}

// TestScriptsLoadAgain: a Redis that lost its scripts (restarted, SCRIPT
// FLUSH) still takes the Producer's tasks.
func TestScriptsLoadAgain(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	p := newProducer(t, rdb, enqueue.Config{})
	for i := range 3 {
		if i > 0 {
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		ids := []modelid.ID{modelid.IntID(int64(10 * (i + 1)))}
		for n := range 100 {
			ids = append(ids, modelid.IntID(int64(1000*(i+1)+n)))
		}
		rc, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids})
		if err != nil || rc.Tasks != 2 {
			t.Fatalf("round %d: %d tasks, %v", i, rc.Tasks, err)
		}
	}
	q, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pending != 3 || q.Aggregating != 3 {
		t.Errorf("%d pending, %d aggregating; want 3 and 3", q.Pending, q.Aggregating)
	}
}
