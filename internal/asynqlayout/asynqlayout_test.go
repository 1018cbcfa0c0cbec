package asynqlayout_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// TestKeysMatchAsynq lets Asynq write its own keys on a real Redis, then
// reads them under the names this package gives.
func TestKeysMatchAsynq(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	const queue = "layout"
	c := asynq.NewClientFromRedisClient(rdb)
	if _, err := c.Enqueue(asynq.NewTask("t", nil), asynq.Queue(queue), asynq.Group("model/int/00"), asynq.TaskID("grouped")); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Unix()
	if _, err := c.Enqueue(asynq.NewTask("t", nil), asynq.Queue(queue), asynq.TaskID("dead")); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if err := insp.ArchiveTask(queue, "dead"); err != nil {
		t.Fatal(err)
	}
	if err := insp.PauseQueue(queue); err != nil {
		t.Fatal(err)
	}

	if ok, err := rdb.SIsMember(ctx, asynqlayout.Groups(queue), "model/int/00").Result(); err != nil || !ok {
		t.Errorf("Groups(%q) = %q does not hold the group Asynq registered (err %v)", queue, asynqlayout.Groups(queue), err)
	}
	if n, err := rdb.ZScore(ctx, asynqlayout.Group(queue, "model/int/00"), "grouped").Result(); err != nil || n == 0 {
		t.Errorf("Group(%q, ...) = %q does not hold the grouped task (err %v)", queue, asynqlayout.Group(queue, "model/int/00"), err)
	}
	score, err := rdb.ZScore(ctx, asynqlayout.Archived(queue), "dead").Result()
	if err != nil {
		t.Errorf("Archived(%q) = %q does not hold the archived task: %v", queue, asynqlayout.Archived(queue), err)
	} else if int64(score) < before-1 || int64(score) > time.Now().Unix()+1 {
		t.Errorf("archived score %v is not the archive time in Unix seconds (around %d)", score, before)
	}
	if n, err := rdb.Exists(ctx, asynqlayout.Paused(queue)).Result(); err != nil || n != 1 {
		t.Errorf("Paused(%q) = %q does not exist while the queue is paused (err %v)", queue, asynqlayout.Paused(queue), err)
	}
}

// TestLeaseMatchesAsynq: a running task is in Lease, scored by a lease
// expiry in the future, while Asynq's server processes it.
func TestLeaseMatchesAsynq(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an Asynq server: about 2 s")
	}
	rdb := redistest.Start(t).Client(t)
	const queue = "lease"
	running, release := make(chan struct{}), make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: map[string]int{queue: 1}, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("t", func(context.Context, *asynq.Task) error {
		close(running)
		<-release
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	if _, err := asynq.NewClientFromRedisClient(rdb).Enqueue(asynq.NewTask("t", nil), asynq.Queue(queue), asynq.TaskID("held")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-running:
	case <-time.After(20 * time.Second):
		t.Fatal("the task did not start")
	}
	score, err := rdb.ZScore(context.Background(), asynqlayout.Lease(queue), "held").Result()
	if err != nil {
		t.Fatalf("Lease(%q) = %q does not hold the running task: %v", queue, asynqlayout.Lease(queue), err)
	}
	if int64(score) <= time.Now().Unix() {
		t.Errorf("lease score %v is not an expiry in the future", score)
	}
}
