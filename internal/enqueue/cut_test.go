package enqueue_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// enqueueConcurrently enqueues ids from n goroutines, most as requests of
// one ID, every 7th request of each type with 3.
func enqueueConcurrently(t *testing.T, p *enqueue.Producer, ids []modelid.ID, n int) {
	t.Helper()
	ints, strs := modelid.SplitByType(ids)
	var reqs [][]modelid.ID
	for _, list := range [][]modelid.ID{ints, strs} {
		for len(list) > 0 {
			k := 1
			if len(reqs)%7 == 0 {
				k = min(3, len(list))
			}
			reqs, list = append(reqs, list[:k]), list[k:]
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return
				}
				if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: reqs[i]}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func mixedIDs(n int) []modelid.ID {
	ids := make([]modelid.ID, n)
	for i := range ids {
		if i%2 == 0 {
			ids[i] = modelid.IntID(int64(i + 1))
		} else {
			ids[i] = modelid.StringID(fmt.Sprintf("am-%06d", i+1))
		}
	}
	return ids
}

// TestFullGroupsBecomeBatchesAtOnce: with no worker running, a group that
// reaches a batch of jobs is merged into a ready batch by the producers,
// leaving only the remainder waiting for the grace period.
func TestFullGroupsBecomeBatchesAtOnce(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	p := newProducer(t, rdb, enqueue.Config{Shards: 1})
	ids := make([]modelid.ID, 250)
	for i := range ids {
		ids[i] = modelid.IntID(int64(i + 1))
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(ids); i += 8 {
				if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids[i : i+1]}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	ready, err := insp.ListPendingTasks(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[modelid.ID]int{}
	for _, ti := range ready {
		pl, err := tasks.DecodePayload(ti.Payload)
		if err != nil || ti.Type != tasks.TypeDeleteBatch || len(pl.IDs) != 100 {
			t.Errorf("ready task %s: type %s, %d IDs, %v; want a batch of 100", ti.ID, ti.Type, len(pl.IDs), err)
		}
		for _, id := range pl.IDs {
			seen[id]++
		}
	}
	waiting, err := insp.ListAggregatingTasks(asynqlayout.Queue, "model/int/00", asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range waiting {
		pl, err := tasks.DecodePayload(ti.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range pl.IDs {
			seen[id]++
		}
	}
	if len(ready) != 2 || len(waiting) != 50 {
		t.Errorf("%d ready batches and %d waiting jobs, want 2 and 50", len(ready), len(waiting))
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("ID %s is in %d tasks", id, seen[id])
		}
	}
	if n, err := rdb.Keys(ctx, asynqlayout.TaskPrefix(asynqlayout.Queue)+"*").Result(); err != nil || len(n) != 52 {
		t.Errorf("%d task hashes, want 52: merged jobs must be gone (err %v)", len(n), err)
	}
	if n, err := rdb.ZCard(ctx, asynqlayout.AggregationSets(asynqlayout.Queue)).Result(); err != nil || n != 0 {
		t.Errorf("%d aggregation sets left (err %v)", n, err)
	}
}

// TestCutsRaceNothing: producers cut groups while an Asynq server
// aggregates the same groups on its own tick (1 s grace period, groups of
// up to 100) and handles every batch. Each ID must reach the handler
// exactly once.
func TestCutsRaceNothing(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ids := mixedIDs(6000)
	var mu sync.Mutex
	got := map[modelid.ID]int{}
	total := 0
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Queues: map[string]int{asynqlayout.Queue: 1}, Concurrency: 4, LogLevel: asynq.FatalLevel,
		GroupAggregator: &tasks.Aggregator{}, GroupGracePeriod: time.Second, GroupMaxDelay: 2 * time.Second, GroupMaxSize: 100,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeDeleteBatch, func(_ context.Context, task *asynq.Task) error {
		pl, err := tasks.DecodePayload(task.Payload())
		if err != nil || len(pl.Rejected) > 0 {
			t.Errorf("batch payload %s: %v", task.Payload(), err)
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range pl.IDs {
			got[id]++
			total++
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	enqueueConcurrently(t, newProducer(t, rdb, enqueue.Config{Shards: 2}), ids, 16)

	insp := asynq.NewInspectorFromRedisClient(rdb)
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, err := insp.GetQueueInfo(asynqlayout.Queue)
		mu.Lock()
		n := total
		mu.Unlock()
		if err == nil && n >= len(ids) && q.Pending+q.Active+q.Aggregating == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d of %d IDs handled (queue %+v, %v)", n, len(ids), q, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("ID %s handled %d times", id, got[id])
		}
	}
	if total != len(ids) {
		t.Errorf("%d IDs handled, want %d", total, len(ids))
	}
}
