package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

func TestDecide(t *testing.T) {
	invalid := &qianfan.Error{Code: 500001, Message: "param invalid"}
	tests := []struct {
		name string
		err  error
		n    int
		want Action
	}{
		{"success", nil, 5, ActComplete},
		{"503 is retried", &qianfan.Error{HTTPStatus: 503}, 5, ActRetry},
		{"336100 high load is retried", &qianfan.Error{Code: 336100}, 5, ActRetry},
		{"connection reset is retried", &qianfan.Error{Err: errors.New("connection reset by peer")}, 5, ActRetry},
		{"qps limit throttles", &qianfan.Error{Code: 18}, 5, ActThrottle},
		{"rpm limit throttles", &qianfan.Error{Code: 336501}, 5, ActThrottle},
		{"429 throttles", &qianfan.Error{HTTPStatus: 429}, 5, ActThrottle},
		{"param invalid on many IDs bisects", invalid, 2, ActBisect},
		{"param invalid on one ID dead-letters", invalid, 1, ActDeadLetter},
		{"bad credentials dead-letter the batch", &qianfan.Error{HTTPStatus: 401, GatewayCode: "SignatureDoesNotMatch"}, 50, ActDeadLetter},
		{"no permission dead-letters the batch", &qianfan.Error{Code: 6}, 50, ActDeadLetter},
		{"unknown code is retried", &qianfan.Error{Code: 987654, Message: "new"}, 5, ActRetry},
		{"context cancelled is retried", context.Canceled, 5, ActRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.err, tt.n); got != tt.want {
				t.Errorf("Decide(%v, %d) = %v, want %v", tt.err, tt.n, got, tt.want)
			}
		})
	}
}

func TestGroupNames(t *testing.T) {
	names := AllGroupNames()
	if len(names) != 4*MaxShards {
		t.Fatalf("%d group names, want %d", len(names), 4*MaxShards)
	}
	for _, n := range names {
		k, ty, s, err := ParseGroupName(n)
		if err != nil {
			t.Fatal(err)
		}
		if GroupName(k, ty, s) != n {
			t.Errorf("round trip of %q gave %q", n, GroupName(k, ty, s))
		}
	}
	if _, _, _, err := ParseGroupName("model/int/64"); err == nil {
		t.Error("shard 64 accepted")
	}
}

func TestShardSpreadsIDs(t *testing.T) {
	counts := make([]int, 16)
	for n := int64(1); n <= 16000; n++ {
		counts[Shard(modelid.IntID(n), 16)]++
	}
	for s, c := range counts {
		if c < 700 || c > 1300 {
			t.Errorf("shard %d got %d of 16000 IDs; want about 1000", s, c)
		}
	}
}

func TestAggregatorMergesAndKeepsUnreadable(t *testing.T) {
	a := &Aggregator{}
	job := func(ids ...modelid.ID) *asynq.Task {
		b, _ := json.Marshal(Payload{Kind: modelid.KindModel, IDs: ids})
		return asynq.NewTask(TypeDelete, b)
	}
	got := a.Aggregate("model/int/00", []*asynq.Task{
		job(modelid.IntID(1), modelid.IntID(2)),
		job(modelid.IntID(2), modelid.IntID(3)),
		asynq.NewTask(TypeDelete, []byte("not json")),
		job(),
	})
	if got == nil {
		t.Fatal("Aggregate returned nil")
	}
	if got.Type() != TypeDeleteBatch {
		t.Errorf("type %q, want %q", got.Type(), TypeDeleteBatch)
	}
	p, err := DecodePayload(got.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.IntID(3)}, p.IDs, cmp.AllowUnexported(modelid.ID{})); diff != "" {
		t.Errorf("IDs (-want +got):\n%s", diff)
	}
	if len(p.Rejected) != 2 {
		t.Errorf("rejected %q, want the two unreadable jobs", p.Rejected)
	}
	if got := a.Aggregate("model/int/00", nil); got == nil {
		t.Error("Aggregate of no tasks returned nil")
	}
}

// fakeDeleter answers calls from a script and records them.
type fakeDeleter struct {
	mu     sync.Mutex
	calls  [][]modelid.ID
	answer func(ids []modelid.ID) (qianfan.Result, error)
}

func (f *fakeDeleter) BatchDelete(_ context.Context, _ modelid.Kind, ids []modelid.ID) (qianfan.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, append([]modelid.ID(nil), ids...))
	f.mu.Unlock()
	return f.answer(ids)
}

// recordingQueue keeps enqueued tasks instead of sending them to Redis.
type recordingQueue struct {
	tasks []*asynq.Task
	ids   map[string]bool
}

func (q *recordingQueue) EnqueueContext(_ context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	id := ""
	for _, o := range opts {
		if o.Type() == asynq.TaskIDOpt {
			id = o.Value().(string)
		}
	}
	if q.ids == nil {
		q.ids = map[string]bool{}
	}
	if q.ids[id] {
		return nil, asynq.ErrTaskIDConflict
	}
	q.ids[id] = true
	q.tasks = append(q.tasks, t)
	return &asynq.TaskInfo{ID: id}, nil
}

type bundle struct {
	h      *Handler
	del    *fakeDeleter
	q      *recordingQueue
	ledger *ledger.Ledger
	rdb    *redis.Client
}

func setup(t *testing.T, answer func([]modelid.ID) (qianfan.Result, error)) *bundle {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	b := &bundle{del: &fakeDeleter{answer: answer}, q: &recordingQueue{}, rdb: rdb}
	b.ledger = ledger.New(rdb, ledger.Config{})
	b.h = NewHandler(b.del, b.q, b.ledger, HandlerConfig{BatchSize: 4, Logger: slog.New(slog.DiscardHandler)})
	return b
}

func batch(t *testing.T, p Payload) *asynq.Task {
	t.Helper()
	tk, err := NewBatchTask(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

var errInvalid = &qianfan.Error{Code: 500001, Message: "param invalid", LogID: "77"}

// badIDs answers 500001 for any list holding one of bad, like Qianfan.
func badIDs(bad ...modelid.ID) func([]modelid.ID) (qianfan.Result, error) {
	return func(ids []modelid.ID) (qianfan.Result, error) {
		for _, id := range ids {
			for _, b := range bad {
				if id == b {
					return qianfan.Result{}, errInvalid
				}
			}
		}
		return qianfan.Result{LogID: "42", Attempts: 1}, nil
	}
}

func TestHandlerDeletesAndRecords(t *testing.T) {
	b := setup(t, badIDs())
	ctx := context.Background()
	ids := []modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.IntID(2)}
	if err := b.h.process(ctx, batch(t, Payload{Kind: modelid.KindModel, IDs: ids}), attempt{taskID: "t1", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]modelid.ID{{modelid.IntID(1), modelid.IntID(2)}}, b.del.calls, cmp.AllowUnexported(modelid.ID{})); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	r, ok, err := b.ledger.Lookup(ctx, modelid.KindModel, modelid.IntID(2))
	if err != nil || !ok || r.State != ledger.StateDeleted || r.LogID != "42" {
		t.Errorf("ledger for 2 = %+v, %v, %v; want deleted with log_id 42", r, ok, err)
	}
	// A redelivered batch makes no call: its IDs are known to be gone.
	if err := b.h.process(ctx, batch(t, Payload{Kind: modelid.KindModel, IDs: ids}), attempt{taskID: "t1", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if len(b.del.calls) != 1 {
		t.Errorf("redelivery made %d calls in all, want 1", len(b.del.calls))
	}
	if n := b.rdb.XLen(ctx, ledger.EventStream).Val(); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
}

func TestHandlerBisectsAndDeadLettersOneID(t *testing.T) {
	b := setup(t, badIDs(modelid.IntID(3)))
	ctx := context.Background()
	err := b.h.process(ctx, batch(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.IntID(3), modelid.IntID(4)}}), attempt{taskID: "p", maxRetry: 3})
	if err != nil {
		t.Fatalf("bisecting batch returned %v", err)
	}
	if len(b.q.tasks) != 2 {
		t.Fatalf("enqueued %d halves, want 2", len(b.q.tasks))
	}
	// Run the queue until it is empty, as a worker would.
	var dead []error
	for i := 0; i < len(b.q.tasks); i++ {
		tk := b.q.tasks[i]
		p, _ := DecodePayload(tk.Payload())
		if p.Parent == "" {
			t.Fatalf("child %d has no parent", i)
		}
		id := p.Parent + "/" + fmt.Sprint(i)
		if err := b.h.process(ctx, tk, attempt{taskID: id, maxRetry: 3}); err != nil {
			dead = append(dead, err)
		}
	}
	if len(dead) != 1 || !errors.Is(dead[0], asynq.SkipRetry) {
		t.Fatalf("errors %v, want one SkipRetry for the bad ID", dead)
	}
	if got, want := dead[0].Error(), "500001 param invalid (log_id 77)"; got != want {
		t.Errorf("archived error %q, want %q", got, want)
	}
	dls, err := deadletter.NewStore(b.rdb).List(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].ID != modelid.IntID(3) || dls[0].Code != 500001 || dls[0].LogID != "77" {
		t.Fatalf("dead letters %+v, want only ID 3 with 500001 and log_id 77", dls)
	}
	for _, id := range []modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.IntID(4)} {
		if r, _, _ := b.ledger.Lookup(ctx, modelid.KindModel, id); r.State != ledger.StateDeleted {
			t.Errorf("ID %s is %q, want deleted", id, r.State)
		}
	}
}

func TestHandlerLostAnswerThenInvalidIsPresumedDeleted(t *testing.T) {
	// The first call deleted the IDs but its answer was lost; every later
	// call answers 500001, as Qianfan does for IDs that are gone.
	calls := 0
	b := setup(t, func(ids []modelid.ID) (qianfan.Result, error) {
		calls++
		if calls == 1 {
			return qianfan.Result{}, &qianfan.Error{Err: errors.New("connection reset"), Ambiguous: true, Attempts: 1}
		}
		e := *errInvalid
		return qianfan.Result{}, &e
	})
	ctx := context.Background()
	tk := batch(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1), modelid.IntID(2)}})
	if err := b.h.process(ctx, tk, attempt{taskID: "p", maxRetry: 3}); err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("lost answer returned %v, want a retryable error", err)
	}
	// Asynq's retry of the same task: 500001, bisect with the uncertainty inherited.
	if err := b.h.process(ctx, tk, attempt{taskID: "p", retried: 1, maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	callsBefore := calls
	for i, child := range b.q.tasks {
		// The verdict waits twice for sibling batches, without calling again.
		for try := 0; ; try++ {
			err := b.h.process(ctx, child, attempt{taskID: fmt.Sprintf("p/%d", i), maxRetry: 3})
			if err == nil {
				break
			}
			var te *ThrottleError
			if !errors.As(err, &te) || try == 2 {
				t.Fatalf("child %d try %d: %v", i, try, err)
			}
		}
	}
	if got := calls - callsBefore; got != 2 {
		t.Errorf("children made %d calls, want 2 (one each; deferred verdicts do not call)", got)
	}
	for _, id := range []modelid.ID{modelid.IntID(1), modelid.IntID(2)} {
		if r, _, _ := b.ledger.Lookup(ctx, modelid.KindModel, id); r.State != ledger.StatePresumed {
			t.Errorf("ID %s is %q, want presumed", id, r.State)
		}
	}
	if n, _ := deadletter.NewStore(b.rdb).Count(ctx); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

func TestHandlerRefutedLostAnswerStillDeadLetters(t *testing.T) {
	// The lost-answer call deleted nothing (ID 2 is bad); deleting ID 1
	// later proves it, so ID 2 is dead, not presumed deleted.
	calls := 0
	bad := badIDs(modelid.IntID(2))
	b := setup(t, func(ids []modelid.ID) (qianfan.Result, error) {
		calls++
		if calls == 1 {
			return qianfan.Result{}, &qianfan.Error{Err: errors.New("connection reset"), Ambiguous: true}
		}
		return bad(ids)
	})
	ctx := context.Background()
	tk := batch(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1), modelid.IntID(2)}})
	_ = b.h.process(ctx, tk, attempt{taskID: "p", maxRetry: 3})
	if err := b.h.process(ctx, tk, attempt{taskID: "p", retried: 1, maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	var errs []error
	for i, child := range b.q.tasks {
		if err := b.h.process(ctx, child, attempt{taskID: fmt.Sprintf("p/%d", i), maxRetry: 3}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) != 1 || !errors.Is(errs[0], asynq.SkipRetry) {
		t.Fatalf("errors %v, want ID 2 dead-lettered", errs)
	}
	if r, _, _ := b.ledger.Lookup(ctx, modelid.KindModel, modelid.IntID(2)); r.State != ledger.StateDead {
		t.Errorf("ID 2 is %q, want dead", r.State)
	}
}

func TestHandlerThrottleDoesNotUseRetries(t *testing.T) {
	b := setup(t, func([]modelid.ID) (qianfan.Result, error) {
		return qianfan.Result{}, &qianfan.Error{Code: 18, Message: "Open api qps request limit reached", RetryAfter: 3 * time.Second}
	})
	err := b.h.process(context.Background(), batch(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1)}}), attempt{taskID: "t", maxRetry: 3})
	var te *ThrottleError
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want a ThrottleError", err)
	}
	if IsFailure(err) {
		t.Error("a throttled batch uses up a retry")
	}
	if d := RetryDelay(0, err, nil); d < 2*time.Second || d > 4*time.Second {
		t.Errorf("throttled retry waits %s, want about the 3s Retry-After", d)
	}
}

func TestHandlerRequestErrorDeadLettersWholeBatch(t *testing.T) {
	b := setup(t, func([]modelid.ID) (qianfan.Result, error) {
		return qianfan.Result{}, &qianfan.Error{HTTPStatus: 403, GatewayCode: "AccessDenied", GatewayMessage: "no permission"}
	})
	ctx := context.Background()
	err := b.h.process(ctx, batch(t, Payload{Kind: modelid.KindVersion, IDs: []modelid.ID{modelid.StringID("amv-1"), modelid.StringID("amv-2")}}), attempt{taskID: "t", maxRetry: 3})
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("got %v, want SkipRetry", err)
	}
	if len(b.del.calls) != 1 || len(b.q.tasks) != 0 {
		t.Errorf("%d calls and %d enqueued; want one call and no bisection", len(b.del.calls), len(b.q.tasks))
	}
	if n, _ := deadletter.NewStore(b.rdb).Count(ctx); n != 2 {
		t.Errorf("%d dead letters, want 2", n)
	}
}

func TestHandlerRetriesUsedUpDeadLetters(t *testing.T) {
	b := setup(t, func([]modelid.ID) (qianfan.Result, error) { return qianfan.Result{}, &qianfan.Error{HTTPStatus: 503} })
	ctx := context.Background()
	tk := batch(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1)}})
	if err := b.h.process(ctx, tk, attempt{taskID: "t", retried: 1, maxRetry: 3}); err == nil || errors.Is(err, asynq.SkipRetry) || !IsFailure(err) {
		t.Fatalf("first failure returned %v, want a counted retry", err)
	}
	if err := b.h.process(ctx, tk, attempt{taskID: "t", retried: 3, maxRetry: 3}); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("last failure returned %v, want SkipRetry", err)
	}
	if n, _ := deadletter.NewStore(b.rdb).Count(ctx); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

func TestHandlerSplitsOversizeAndMixedBatches(t *testing.T) {
	b := setup(t, badIDs())
	ids := []modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.IntID(3), modelid.IntID(4), modelid.IntID(5), modelid.StringID("am-1")}
	tk := batch(t, Payload{Kind: modelid.KindModel, IDs: ids})
	for range 2 { // a second delivery enqueues nothing new
		if err := b.h.process(context.Background(), tk, attempt{taskID: "big", maxRetry: 3}); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.del.calls) != 0 {
		t.Errorf("split made %d calls, want 0", len(b.del.calls))
	}
	var sizes []int
	for _, c := range b.q.tasks {
		p, _ := DecodePayload(c.Payload())
		sizes = append(sizes, len(p.IDs))
	}
	if diff := cmp.Diff([]int{4, 1, 1}, sizes); diff != "" {
		t.Errorf("child sizes (-want +got):\n%s", diff)
	}
}

func TestHandlerCallCutShortByCrashIsUncertain(t *testing.T) {
	b := setup(t, func([]modelid.ID) (qianfan.Result, error) { e := *errInvalid; return qianfan.Result{}, &e })
	ctx := context.Background()
	// An execution that died during its call leaves its write-ahead mark.
	if err := b.ledger.BeginCall(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := b.h.process(ctx, batch(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1), modelid.IntID(2)}}), attempt{taskID: "p", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	for _, c := range b.q.tasks {
		p, _ := DecodePayload(c.Payload())
		if diff := cmp.Diff([]string{"p"}, p.Uncertain); diff != "" {
			t.Errorf("half inherits uncertainty (-want +got):\n%s", diff)
		}
	}
	if len(b.q.tasks) != 2 {
		t.Errorf("%d halves, want 2", len(b.q.tasks))
	}
}

func TestHandlerLostAnswerIsolatesIDs(t *testing.T) {
	b := setup(t, func([]modelid.ID) (qianfan.Result, error) {
		return qianfan.Result{}, &qianfan.Error{Code: 500001, Message: "param invalid", Ambiguous: true, Attempts: 2}
	})
	ids := []modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.IntID(3), modelid.IntID(4)}
	if err := b.h.process(context.Background(), batch(t, Payload{Kind: modelid.KindModel, IDs: ids}), attempt{taskID: "p", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if len(b.q.tasks) != len(ids) {
		t.Fatalf("%d children, want one per ID after a lost answer", len(b.q.tasks))
	}
	for i, c := range b.q.tasks {
		p, _ := DecodePayload(c.Payload())
		if len(p.IDs) != 1 || p.IDs[0] != ids[i] || p.Split != "isolate" || len(p.Uncertain) != 1 {
			t.Errorf("child %d: %+v", i, p)
		}
	}
}

func TestHandlerBadIDWithItsOwnLostAnswerIsStillDead(t *testing.T) {
	// {1, 2} is rejected with no doubt, so one of them was bad then. ID 1 is
	// deleted; ID 2's own call then loses its answer and its retry answers
	// 500001. ID 2 must be dead, not presumed deleted by that call.
	bad := badIDs(modelid.IntID(2))
	lost := true
	b := setup(t, func(ids []modelid.ID) (qianfan.Result, error) {
		if len(ids) == 1 && ids[0] == modelid.IntID(2) && lost {
			lost = false
			e := *errInvalid
			e.Ambiguous = true
			return qianfan.Result{}, &e
		}
		return bad(ids)
	})
	ctx := context.Background()
	if err := b.h.process(ctx, batch(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1), modelid.IntID(2)}}), attempt{taskID: "p", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if len(b.q.tasks) != 2 {
		t.Fatalf("%d children, want 2 halves", len(b.q.tasks))
	}
	if err := b.h.process(ctx, b.q.tasks[0], attempt{taskID: "p/0", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	err := b.h.process(ctx, b.q.tasks[1], attempt{taskID: "p/1", maxRetry: 3})
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("ID 2 returned %v, want it dead-lettered at once", err)
	}
	if r, _, _ := b.ledger.Lookup(ctx, modelid.KindModel, modelid.IntID(2)); r.State != ledger.StateDead || r.Code != 500001 {
		t.Errorf("ID 2 is %q (code %d), want dead with 500001", r.State, r.Code)
	}
}

func TestHandlerKeepsCallMarkWhenRecordingFails(t *testing.T) {
	b := setup(t, badIDs())
	ctx := context.Background()
	// Redis refuses the ledger write right after the call succeeded: the
	// outcome is not recorded, so the write-ahead mark must stay.
	var failWrites atomic.Bool
	b.rdb.AddHook(failHSet{&failWrites})
	b.del.answer = func([]modelid.ID) (qianfan.Result, error) {
		failWrites.Store(true)
		return qianfan.Result{LogID: "1", Attempts: 1}, nil
	}
	err := b.h.process(ctx, batch(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1), modelid.IntID(2)}}), attempt{taskID: "p", maxRetry: 3})
	if err == nil {
		t.Fatal("a failed ledger write was not reported")
	}
	failWrites.Store(false)
	// The next execution's BeginCall finds the mark and counts the call as
	// possibly applied.
	if err := b.ledger.BeginCall(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if u, err := b.ledger.Uncertain(ctx, "p"); err != nil || !u {
		t.Errorf("write-ahead mark gone after a failed recording: uncertain %v, %v", u, err)
	}
}

// failHSet makes pipelines holding HSET fail while on is set.
type failHSet struct{ on *atomic.Bool }

func (failHSet) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (failHSet) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (f failHSet) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if f.on.Load() {
			for _, c := range cmds {
				if c.Name() == "hset" {
					return errors.New("injected: Redis refused the write")
				}
			}
		}
		return next(ctx, cmds)
	}
}
