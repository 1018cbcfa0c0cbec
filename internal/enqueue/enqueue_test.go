package enqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

var cmpID = cmp.Comparer(func(a, b modelid.ID) bool { return a == b })

func newProducer(t *testing.T, rdb redis.UniversalClient, cfg enqueue.Config) *enqueue.Producer {
	t.Helper()
	p, err := enqueue.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnqueueSplitsByTypeAndCollapsesDuplicates(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, enqueue.Config{BatchSize: 3, Shards: 2})
	ids := []modelid.ID{modelid.IntID(1), modelid.StringID("am-a"), modelid.IntID(2), modelid.IntID(1),
		modelid.IntID(3), modelid.IntID(4), modelid.StringID("am-b")}
	rc, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	if rc.IDs != 6 || rc.IntIDs != 4 || rc.StringIDs != 2 || rc.Duplicates != 1 {
		t.Errorf("receipt counts %+v", rc)
	}
	// 4 ints with batch size 3: one ready batch of 3, one grouped job of 1;
	// 2 strings: one grouped job.
	var got []string
	for _, b := range rc.Batches {
		got = append(got, fmt.Sprintf("%s/%d/grouped=%v", b.IDType, b.IDs, b.Group != ""))
	}
	if diff := cmp.Diff([]string{"int/3/grouped=false", "int/1/grouped=true", "string/2/grouped=true"}, got); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

func TestEnqueueRejectsInvalidAndEnqueuesNothing(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, enqueue.Config{})
	_, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel,
		IDs: []modelid.ID{modelid.IntID(1), modelid.IntID(-1), modelid.StringID("am a"), modelid.StringID("585"),
			modelid.StringID("amv-1"), modelid.StringID("\ufeffam-x")}})
	var ie *modelid.InvalidIDsError
	if !errors.As(err, &ie) || len(ie.Invalid) != 5 {
		t.Fatalf("err = %v, want five invalid IDs", err)
	}
	if n := len(m.Keys()); n != 0 {
		t.Errorf("%d Redis keys written for a rejected request", n)
	}
	if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: "model-set", IDs: []modelid.ID{modelid.IntID(1)}}); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel}); !errors.Is(err, enqueue.ErrNoIDs) {
		t.Errorf("empty request: %v", err)
	}
}

func TestEnqueueKeyIsIdempotent(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, enqueue.Config{})
	req := enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(7)}, Key: "offboard-tenant-42"}
	if _, err := p.Enqueue(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	rc, err := p.Enqueue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Batches) != 1 || !rc.Batches[0].Existing {
		t.Errorf("second enqueue with the same key: %+v, want one existing batch", rc.Batches)
	}
}

// TestRepeatedKeyReportsTheOriginalTime: a repeat's receipt tells when the
// first request's task runs, not when the repeat asked for.
func TestRepeatedKeyReportsTheOriginalTime(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, enqueue.Config{})
	first := time.Now().Add(time.Hour).Truncate(time.Second)
	req := enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(7), modelid.StringID("am-7")}, Key: "k", ProcessAt: first}
	if _, err := p.Enqueue(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	req.ProcessAt = first.Add(2 * time.Hour)
	rc, err := p.Enqueue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rc.Batches {
		if !b.Existing || b.State != "scheduled" || !b.At.Equal(first) || b.IDs != 1 {
			t.Errorf("repeat batch %+v, want existing, scheduled at %s", b, first.UTC())
		}
	}
	if rc.Batches[0].TaskID != "k/int/0" || rc.Batches[1].TaskID != "k/string/0" {
		t.Errorf("task IDs %s, %s", rc.Batches[0].TaskID, rc.Batches[1].TaskID)
	}
}

func TestStream(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, enqueue.Config{BatchSize: 2})
	var got []string
	s, err := p.Stream(enqueue.Request{Kind: modelid.KindModel, Key: "s", OnBatch: func(b enqueue.Batch) {
		got = append(got, fmt.Sprintf("%s %d grouped=%v", b.TaskID, b.IDs, b.Group != ""))
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []modelid.ID{modelid.IntID(1), modelid.StringID("am-a"), modelid.IntID(1), modelid.IntID(2),
		modelid.IntID(3), modelid.StringID("am-a")} {
		if err := s.Add(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 0 {
		t.Errorf("%d batches written before a round trip filled or the Stream closed", len(got))
	}
	if err := s.Add(ctx, modelid.StringID("amv-x")); !errors.As(err, new(*modelid.InvalidIDsError)) {
		t.Errorf("a version ID in a model stream: %v", err)
	}
	rc, err := s.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"s/int/0 2 grouped=false", "s/int/1 1 grouped=true", "s/string/0 1 grouped=true"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	if rc.IDs != 4 || rc.Duplicates != 2 || rc.Tasks != 3 || rc.Batches != nil {
		t.Errorf("receipt %+v", rc)
	}
	if _, err := p.Stream(enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1)}}); err == nil {
		t.Error("a Stream took Request.IDs")
	}
}

func TestDelayedRequestsAreScheduledBatches(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, enqueue.Config{})
	at := time.Now().Add(time.Hour)
	rc, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindVersion, IDs: []modelid.ID{modelid.StringID("amv-1")}, ProcessAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Batches) != 1 || rc.Batches[0].Group != "" || rc.Batches[0].At.IsZero() {
		t.Fatalf("batches %+v, want one scheduled ready batch", rc.Batches)
	}
	q, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if q.Scheduled != 1 {
		t.Errorf("%d scheduled tasks, want 1", q.Scheduled)
	}
}

// TestBulkTaskCount is the acceptance bound: 100,000 IDs become at most
// ceil(100000/batch size) + groups tasks, on a real Redis.
func TestBulkTaskCount(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	p := newProducer(t, rdb, enqueue.Config{})
	ids := make([]modelid.ID, 0, 100_050)
	for n := int64(1); n <= 100_000; n++ {
		ids = append(ids, modelid.IntID(n))
	}
	for i := range 50 {
		ids = append(ids, modelid.StringID(fmt.Sprintf("am-%d", i)))
	}
	rc, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	q, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 full int batches and one grouped job of 50 string IDs.
	if q.Size != 1001 || len(rc.Batches) != 1001 {
		t.Errorf("%d tasks in the queue, %d in the receipt; want 1001", q.Size, len(rc.Batches))
	}
	groups := 4 * enqueue.DefaultShards // kinds × ID types × shards
	if limit := (len(ids)+99)/100 + groups; q.Size > limit {
		t.Errorf("%d tasks, over the bound %d", q.Size, limit)
	}
}

// TestRunRequestsAreReadyBatches: a rule run's IDs never wait in a group,
// where they would merge with other jobs and lose their run.
func TestRunRequestsAreReadyBatches(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, enqueue.Config{BatchSize: 3})
	ids := []modelid.ID{modelid.StringID("amv-a"), modelid.StringID("amv-b"), modelid.StringID("amv-c"), modelid.StringID("amv-d")}
	rc, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindVersion, IDs: ids, Key: "run:r1", Run: "r1", Rule: "ci", DeleteInUse: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Batches) != 2 {
		t.Fatalf("batches %+v, want 2", rc.Batches)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for _, b := range rc.Batches {
		if b.Group != "" {
			t.Errorf("batch %s waits in group %s", b.TaskID, b.Group)
		}
		info, err := insp.GetTaskInfo(asynqlayout.Queue, b.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		var pl tasks.Payload
		if err := json.Unmarshal(info.Payload, &pl); err != nil {
			t.Fatal(err)
		}
		if pl.Run != "r1" || pl.Rule != "ci" || !pl.DeleteInUse {
			t.Errorf("batch %s payload run %q rule %q, delete_in_use %v; want r1, ci, true", b.TaskID, pl.Run, pl.Rule, pl.DeleteInUse)
		}
	}
}

// TestEnqueueKeyWithOtherIDsConflicts: a key reused for other IDs is
// refused whole, naming the key, and nothing of the second request is
// enqueued; the same IDs in another order are the same request.
func TestEnqueueKeyWithOtherIDsConflicts(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	p := newProducer(t, rdb, enqueue.Config{})
	ctx := context.Background()
	first := enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1), modelid.IntID(2)}, Key: "tenant-7"}
	if _, err := p.Enqueue(ctx, first); err != nil {
		t.Fatal(err)
	}
	same := first
	same.IDs = []modelid.ID{modelid.IntID(2), modelid.IntID(1), modelid.IntID(2)}
	rc, err := p.Enqueue(ctx, same)
	if err != nil || len(rc.Batches) != 1 || !rc.Batches[0].Existing {
		t.Fatalf("the same request again: %+v, %v; want the existing batch", rc.Batches, err)
	}
	before, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo("qfpurge")
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range [][]modelid.ID{
		{modelid.IntID(1), modelid.IntID(2), modelid.IntID(3), modelid.IntID(4)},
		{modelid.IntID(3)},
	} {
		r := first
		r.IDs = other
		_, err := p.Enqueue(ctx, r)
		if !errors.Is(err, enqueue.ErrKeyConflict) || !strings.Contains(err.Error(), `"tenant-7"`) {
			t.Fatalf("key reused for %v: %v; want a conflict naming the key", other, err)
		}
	}
	after, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo("qfpurge")
	if err != nil {
		t.Fatal(err)
	}
	if after.Size != before.Size {
		t.Errorf("queue size %d after the conflicts, was %d: a conflicting request enqueued tasks", after.Size, before.Size)
	}
	// Another kind is another request too.
	v := first
	v.Kind = modelid.KindVersion
	if _, err := p.Enqueue(ctx, v); !errors.Is(err, enqueue.ErrKeyConflict) {
		t.Errorf("the key for another kind: %v, want a conflict", err)
	}
}

// TestGraceDelaysEveryRequest: with the fleet's grace period set, a
// request for now is scheduled after it; one asking for later keeps its
// time.
func TestGraceDelaysEveryRequest(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	if err := enqueue.SetGrace(ctx, rdb, time.Hour); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, rdb, enqueue.Config{})
	before := time.Now()
	rc, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1)}})
	if err != nil {
		t.Fatal(err)
	}
	if at := rc.Batches[0].At; at.Before(before.Add(time.Hour-time.Second)) || rc.Batches[0].Group != "" {
		t.Errorf("a request for now under a 1h grace: %+v; want scheduled an hour ahead", rc.Batches[0])
	}
	later := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	rc, err = p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(2)}, ProcessAt: later})
	if err != nil || !rc.Batches[0].At.Equal(later.UTC()) {
		t.Errorf("a request for later: %+v %v; want its own time", rc.Batches, err)
	}
	if err := enqueue.SetGrace(ctx, rdb, 0); err != nil {
		t.Fatal(err)
	}
	if g, err := enqueue.Grace(ctx, rdb); err != nil || g != 0 {
		t.Errorf("grace after removal: %v %v", g, err)
	}
}
