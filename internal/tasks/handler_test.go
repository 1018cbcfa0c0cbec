package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/inuse"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// account is a Qianfan stand-in: IDs that exist, deleted all or none per
// call as Qianfan rejects a list holding a missing ID, with scripted lost
// answers.
type account struct {
	mu     sync.Mutex
	exists map[modelid.ID]bool
	calls  [][]modelid.ID
	// fault, when set, picks what the n-th delete call (from 0) does:
	// "drop" deletes and loses the answer, "reset" loses it without
	// deleting, "503" fails without deleting, "" answers normally.
	fault     func(n int) string
	describes int
	v2calls   int
	v1Gone    bool
	// byString maps V2's string IDs to the account's IDs (int IDs' am- forms).
	byString map[string]modelid.ID
}

func newAccount(ids ...modelid.ID) *account {
	a := &account{exists: map[modelid.ID]bool{}}
	for _, id := range ids {
		a.exists[id] = true
	}
	return a
}

var errInvalid = &qianfan.Error{Code: 500001, Message: "param invalid", LogID: "77"}

func (a *account) Delete(_ context.Context, _ modelid.Kind, ids []modelid.ID) (qianfan.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.v1Gone {
		a.calls = append(a.calls, slices.Clone(ids))
		return qianfan.Result{}, &qianfan.Error{Code: 3, Message: "Unsupported openapi method"}
	}
	n := len(a.calls)
	a.calls = append(a.calls, slices.Clone(ids))
	mode := ""
	if a.fault != nil {
		mode = a.fault(n)
	}
	lost := &qianfan.Error{Err: errors.New("connection reset by peer"), Ambiguous: true, Attempts: 1}
	switch mode {
	case "reset":
		return qianfan.Result{}, lost
	case "503":
		return qianfan.Result{}, &qianfan.Error{HTTPStatus: 503, Message: "Service Unavailable"}
	}
	for _, id := range ids {
		if !a.exists[id] {
			e := *errInvalid
			return qianfan.Result{}, &e
		}
	}
	for _, id := range ids {
		delete(a.exists, id)
	}
	if mode == "drop" {
		return qianfan.Result{}, lost
	}
	return qianfan.Result{LogID: "42", Attempts: 1}, nil
}

// DeleteOne is V2: one string ID; "gone1" in fault switches V1 off
// elsewhere, V2 answers like V1 for one ID but with V2's codes.
func (a *account) DeleteOne(_ context.Context, _ modelid.Kind, id string) (qianfan.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.calls)
	a.calls = append(a.calls, []modelid.ID{modelid.StringID(id)})
	a.v2calls++
	mode := ""
	if a.fault != nil {
		mode = a.fault(n)
	}
	key := modelid.StringID(id)
	if a.byString != nil {
		if k, ok := a.byString[id]; ok {
			key = k
		}
	}
	switch mode {
	case "reset":
		return qianfan.Result{}, &qianfan.Error{Err: errors.New("connection reset by peer"), Ambiguous: true}
	case "503":
		return qianfan.Result{}, &qianfan.Error{HTTPStatus: 503}
	}
	if !a.exists[key] {
		return qianfan.Result{}, &qianfan.Error{HTTPStatus: 404, ErrorCode: "NoSuchKey", Message: "not found", LogID: "r-404"}
	}
	delete(a.exists, key)
	if mode == "drop" {
		return qianfan.Result{}, &qianfan.Error{Err: errors.New("connection reset by peer"), Ambiguous: true}
	}
	return qianfan.Result{LogID: "r-ok", Attempts: 1}, nil
}

func (a *account) ProbeV1(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.v1Gone {
		return &qianfan.Error{Code: 3, Message: "Unsupported openapi method"}
	}
	return nil
}

func (a *account) Describe(_ context.Context, _ modelid.Kind, id modelid.ID) (bool, modelid.ID, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.describes++
	return a.exists[id], modelid.ID{}, nil
}

func (a *account) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

// snapshot saves a listing of the account's models taken now.
func (a *account) snapshot(t *testing.T, st *inventory.Store) {
	t.Helper()
	seq, err := st.Stamp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	s := &inventory.Snapshot{Taken: time.Now(), Seq: seq, Decides: []inventory.Form{
		{Kind: modelid.KindModel, Type: modelid.IDInt}, {Kind: modelid.KindModel, Type: modelid.IDString}}}
	for id := range a.exists {
		if n, ok := id.Int(); ok {
			s.Models = append(s.Models, inventory.Model{ID: "am-" + id.String(), IntID: n})
		} else {
			s.Models = append(s.Models, inventory.Model{ID: id.String()})
		}
	}
	a.mu.Unlock()
	if err := st.Save(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// queue keeps enqueued tasks with their task IDs, as Asynq would.
type queue struct {
	mu    sync.Mutex
	tasks []queued
	seen  map[string]bool
}

type queued struct {
	id string
	t  *asynq.Task
}

func (q *queue) EnqueueContext(_ context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	id := ""
	for _, o := range opts {
		if o.Type() == asynq.TaskIDOpt {
			id = o.Value().(string)
		}
	}
	if q.seen == nil {
		q.seen = map[string]bool{}
	}
	if q.seen[id] {
		return nil, asynq.ErrTaskIDConflict
	}
	q.seen[id] = true
	q.tasks = append(q.tasks, queued{id, t})
	return &asynq.TaskInfo{ID: id}, nil
}

type bundle struct {
	h      *Handler
	acct   *account
	q      *queue
	ledger *ledger.Ledger
	inv    *inventory.Store
	rdb    *redis.Client
}

func setup(t *testing.T, acct *account, mod ...func(*HandlerConfig)) *bundle {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	b := &bundle{acct: acct, q: &queue{}, rdb: rdb, ledger: ledger.New(rdb, ledger.Config{Logger: slog.New(slog.DiscardHandler)}), inv: inventory.NewStore(rdb)}
	cfg := HandlerConfig{BatchSize: 4, Logger: slog.New(slog.DiscardHandler), VerifyPoll: time.Millisecond, Guard: guard{}}
	for _, m := range mod {
		m(&cfg)
	}
	b.h = NewHandler(acct, b.q, b.ledger, b.inv, cfg)
	return b
}

func ids(ns ...int64) []modelid.ID {
	out := make([]modelid.ID, len(ns))
	for i, n := range ns {
		out[i] = modelid.IntID(n)
	}
	return out
}

// drainResult is what running a queue to its end gave.
type drainResult struct {
	archived []string // errors of tasks that ended archived
	waits    int      // ThrottleErrors (no retry used)
}

// drain runs the queue as a worker would, following the real task IDs: a
// task asking to wait runs again later (onWait is called before, e.g. to
// take a listing), a plain error is retried up to maxRetry times, SkipRetry
// archives it. It stops when nothing is left, failing after 200 rounds.
func (b *bundle) drain(t *testing.T, first *asynq.Task, firstID string, onWait func()) drainResult {
	t.Helper()
	var res drainResult
	b.q.mu.Lock()
	b.q.tasks = append(b.q.tasks, queued{firstID, first})
	b.q.mu.Unlock()
	retried := map[string]int{}
	for round := 0; ; round++ {
		if round > 200 {
			t.Fatal("the queue did not drain in 200 runs")
		}
		b.q.mu.Lock()
		if len(b.q.tasks) == 0 {
			b.q.mu.Unlock()
			return res
		}
		next := b.q.tasks[0]
		b.q.tasks = b.q.tasks[1:]
		b.q.mu.Unlock()
		err := b.h.process(context.Background(), next.t, attempt{taskID: next.id, retried: retried[next.id], maxRetry: 3})
		var te *ThrottleError
		switch {
		case err == nil:
		case errors.Is(err, asynq.SkipRetry):
			res.archived = append(res.archived, err.Error())
		case errors.As(err, &te):
			res.waits++
			if onWait != nil {
				onWait()
			}
			b.q.mu.Lock()
			b.q.tasks = append(b.q.tasks, next)
			b.q.mu.Unlock()
		default:
			retried[next.id]++
			if retried[next.id] > 3 {
				t.Fatalf("task %s failed past its retries: %v", next.id, err)
			}
			b.q.mu.Lock()
			b.q.tasks = append(b.q.tasks, next)
			b.q.mu.Unlock()
		}
	}
}

func newBatch(t *testing.T, list []modelid.ID, mod ...func(*Payload)) *asynq.Task {
	t.Helper()
	p := Payload{Kind: modelid.KindModel, IDs: list}
	for _, m := range mod {
		m(&p)
	}
	tk, err := NewBatchTask(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func (b *bundle) states(t *testing.T, list []modelid.ID) []ledger.State {
	t.Helper()
	recs, err := b.ledger.LookupMany(context.Background(), modelid.KindModel, list)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]ledger.State, len(recs))
	for i, r := range recs {
		out[i] = r.State
	}
	return out
}

func repeat(s ledger.State, n int) []ledger.State {
	out := make([]ledger.State, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func (b *bundle) deadLetters(t *testing.T) []deadletter.Entry {
	t.Helper()
	es, err := deadletter.NewStore(b.rdb).All(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestHandlerDeletesAndRecords(t *testing.T) {
	b := setup(t, newAccount(ids(1, 2)...))
	ctx := context.Background()
	list := ids(1, 2, 2)
	if err := b.h.process(ctx, newBatch(t, list), attempt{taskID: "t1", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]modelid.ID{ids(1, 2)}, b.acct.calls, cmp.AllowUnexported(modelid.ID{})); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	r, ok, err := b.ledger.Lookup(ctx, modelid.KindModel, modelid.IntID(2))
	if err != nil || !ok || r.State != ledger.StateDeleted || r.LogID != "42" || !r.Verified.IsZero() {
		t.Errorf("ledger for 2 = %+v, %v, %v; want deleted with log_id 42", r, ok, err)
	}
	// A redelivered batch makes no call: its IDs are known to be gone.
	if err := b.h.process(ctx, newBatch(t, list), attempt{taskID: "t1", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if b.acct.callCount() != 1 {
		t.Errorf("redelivery made %d calls in all, want 1", b.acct.callCount())
	}
	if n := b.rdb.XLen(ctx, ledger.EventStream).Val(); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
	if c, _ := b.ledger.Call(ctx, "t1"); c.State != "" {
		t.Errorf("call record left behind: %+v", c)
	}
}

func TestHandlerBisectsToTheBadID(t *testing.T) {
	b := setup(t, newAccount(ids(1, 2, 4)...))
	res := b.drain(t, newBatch(t, ids(1, 2, 3, 4)), "p", nil)
	if diff := cmp.Diff([]string{"500001 param invalid (log_id 77)"}, res.archived); diff != "" {
		t.Errorf("archived errors (-want +got):\n%s", diff)
	}
	want := []ledger.State{ledger.StateDeleted, ledger.StateDeleted, ledger.StateDead, ledger.StateDeleted}
	if diff := cmp.Diff(want, b.states(t, ids(1, 2, 3, 4))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	dls := b.deadLetters(t)
	if len(dls) != 1 || dls[0].ID != modelid.IntID(3) || dls[0].Code != 500001 || dls[0].LogID != "77" {
		t.Errorf("dead letters %+v, want ID 3 with 500001 and its log_id", dls)
	}
	// Children's task IDs differ from their first characters on.
	b.q.mu.Lock()
	defer b.q.mu.Unlock()
	prefixes := map[string]bool{}
	for id := range b.q.seen {
		prefixes[id[:8]] = true
	}
	if len(prefixes) != len(b.q.seen) {
		t.Errorf("child task IDs share their first 8 characters: %v", b.q.seen)
	}
}

// TestHandlerLostAnswerIsVerified: a listing showed the IDs before the
// call; the call deletes the batch but its answer is lost; the retry
// answers 500001; a listing taken afterwards shows the IDs absent, so they
// are recorded deleted, verified, and never dead.
func TestHandlerLostAnswerIsVerified(t *testing.T) {
	acct := newAccount(ids(1, 2, 3, 4, 9)...)
	acct.fault = func(n int) string { return map[int]string{0: "drop"}[n] }
	b := setup(t, acct)
	acct.snapshot(t, b.inv)
	listed := 0
	res := b.drain(t, newBatch(t, ids(1, 2, 3, 4)), "p", func() {
		if listed == 0 {
			acct.snapshot(t, b.inv)
			listed++
		}
	})
	if len(res.archived) != 0 || listed != 1 {
		t.Fatalf("archived %v, listings %d; want none archived, one listing", res.archived, listed)
	}
	if diff := cmp.Diff(repeat(ledger.StateDeleted, 4), b.states(t, ids(1, 2, 3, 4))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	r, _, _ := b.ledger.Lookup(context.Background(), modelid.KindModel, modelid.IntID(3))
	if r.Verified.IsZero() {
		t.Errorf("record %+v does not say when it was verified", r)
	}
	if acct.callCount() != 2 {
		t.Errorf("%d calls, want 2 (the lost one and the rejected retry)", acct.callCount())
	}
}

// TestHandlerLostAnswerUnlistedIDsAreSentAgain: a batch holding a bad ID
// loses its call's answer (the call deleted nothing) and the listing
// afterwards does not show any of its IDs (models a listing does not
// return). Absence proves nothing for IDs never shown: the batch is sent
// again and split, the good IDs are deleted by those calls, and the bad ID,
// refused alone while the rest of its call went through, is dead. Nothing
// is recorded deleted that was not.
func TestHandlerLostAnswerUnlistedIDsAreSentAgain(t *testing.T) {
	acct := newAccount(ids(1, 2, 3, 4)...)
	acct.fault = func(n int) string { return map[int]string{0: "reset"}[n] }
	b := setup(t, acct, func(c *HandlerConfig) { c.BatchSize = 8 })
	empty := &inventory.Snapshot{Taken: time.Now(), Decides: []inventory.Form{{Kind: modelid.KindModel, Type: modelid.IDInt}}}
	res := b.drain(t, newBatch(t, ids(1, 2, 3, 4, 404)), "p", func() {
		seq, err := b.inv.Stamp(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s := *empty
		s.Seq = seq
		if err := b.inv.Save(context.Background(), &s); err != nil {
			t.Fatal(err)
		}
	})
	want := []ledger.State{ledger.StateDeleted, ledger.StateDeleted, ledger.StateDeleted, ledger.StateDeleted, ledger.StateDead}
	if diff := cmp.Diff(want, b.states(t, ids(1, 2, 3, 4, 404))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	acct.mu.Lock()
	left := len(acct.exists)
	acct.mu.Unlock()
	if left != 0 {
		t.Errorf("%d IDs still exist at Qianfan", left)
	}
	if len(res.archived) != 1 || len(b.deadLetters(t)) != 1 {
		t.Errorf("archived %v, dead letters %d; want one each", res.archived, len(b.deadLetters(t)))
	}
}

// TestHandlerLostAnswerNothingCanTellIsPresumed: the call deletes the
// batch and loses its answer, and no listing ever showed its IDs: sent
// again, each is refused, and nothing of the call went through on the
// resend. Nothing can tell "deleted by the lost call" from "never
// existed": presumed, never deleted and never dead.
func TestHandlerLostAnswerNothingCanTellIsPresumed(t *testing.T) {
	acct := newAccount(ids(1, 2, 3)...)
	acct.fault = func(n int) string { return map[int]string{0: "drop"}[n] }
	b := setup(t, acct)
	res := b.drain(t, newBatch(t, ids(1, 2, 3)), "p", func() { acct.snapshot(t, b.inv) })
	if diff := cmp.Diff(repeat(ledger.StatePresumed, 3), b.states(t, ids(1, 2, 3))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if len(res.archived) != 0 || len(b.deadLetters(t)) != 0 {
		t.Errorf("archived %v, dead letters %d; want none", res.archived, len(b.deadLetters(t)))
	}
}

// TestHandlerLostAnswerOnABadIDIsDead: a bad ID alone, its first call reset,
// its retry rejected: nothing showed it before the call and the listing does
// not hold it, so it is sent once more on its own and dead-lettered once.
func TestHandlerLostAnswerOnABadIDIsDead(t *testing.T) {
	acct := newAccount(ids(1)...)
	acct.fault = func(n int) string { return map[int]string{0: "reset"}[n] }
	b := setup(t, acct)
	listed := false
	res := b.drain(t, newBatch(t, ids(404)), "p", func() {
		if !listed {
			acct.snapshot(t, b.inv)
			listed = true
		}
	})
	if len(res.archived) != 1 || len(b.deadLetters(t)) != 1 {
		t.Fatalf("archived %v, dead letters %+v; want one each", res.archived, b.deadLetters(t))
	}
	if st := b.states(t, ids(404)); st[0] != ledger.StateDead {
		t.Errorf("state %v, want dead", st)
	}
	if acct.describes != 1 {
		t.Errorf("%d detail calls, want 1 (before the first call of a small batch)", acct.describes)
	}
}

// TestHandlerLostAnswerOnAGoodSingleIsDeleted: the detail call before the
// first call shows the ID, the call deletes it and loses the answer, the
// retry is rejected, the listing does not hold it: deleted, verified.
func TestHandlerLostAnswerOnAGoodSingleIsDeleted(t *testing.T) {
	acct := newAccount(ids(5)...)
	acct.fault = func(n int) string { return map[int]string{0: "drop"}[n] }
	b := setup(t, acct)
	res := b.drain(t, newBatch(t, ids(5)), "p", func() { acct.snapshot(t, b.inv) })
	if len(res.archived) != 0 {
		t.Fatalf("archived %v", res.archived)
	}
	if st := b.states(t, ids(5)); st[0] != ledger.StateDeleted {
		t.Errorf("state %v, want deleted", st)
	}
}

// TestHandlerLostAnswerButStillPresent: the lost call deleted nothing (a bad
// ID made Qianfan reject the whole list); the listing shows the good IDs
// still there: they are sent again, the bad one rechecked and dead once.
func TestHandlerLostAnswerButStillPresent(t *testing.T) {
	acct := newAccount(ids(1, 2, 3)...)
	acct.fault = func(n int) string { return map[int]string{0: "reset"}[n] }
	b := setup(t, acct)
	res := b.drain(t, newBatch(t, ids(1, 2, 3, 404)), "p", func() { acct.snapshot(t, b.inv) })
	want := []ledger.State{ledger.StateDeleted, ledger.StateDeleted, ledger.StateDeleted, ledger.StateDead}
	if diff := cmp.Diff(want, b.states(t, ids(1, 2, 3, 404))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if len(res.archived) != 1 || len(b.deadLetters(t)) != 1 {
		t.Errorf("archived %v, dead letters %d; want one each", res.archived, len(b.deadLetters(t)))
	}
}

func TestHandlerThrottleUsesNoRetry(t *testing.T) {
	acct := newAccount(ids(1)...)
	b := setup(t, acct)
	b.h.del = throttled{acct}
	err := b.h.process(context.Background(), newBatch(t, ids(1)), attempt{taskID: "t", maxRetry: 3})
	var te *ThrottleError
	if !errors.As(err, &te) || IsFailure(err) || te.Wait != 30*time.Second {
		t.Errorf("throttled call: %v; want a ThrottleError of 30s that uses no retry", err)
	}
}

type throttled struct{ *account }

func (throttled) Delete(context.Context, modelid.Kind, []modelid.ID) (qianfan.Result, error) {
	return qianfan.Result{}, &qianfan.Error{Code: 18, Message: "Open api qps request limit reached"}
}

func TestHandlerRetriesUsedUpDeadLetter(t *testing.T) {
	acct := newAccount(ids(1, 2, 3)...)
	acct.fault = func(int) string { return "503" }
	b := setup(t, acct)
	err := b.h.process(context.Background(), newBatch(t, ids(1, 2, 3)), attempt{taskID: "t", retried: 3, maxRetry: 3})
	if !errors.Is(err, asynq.SkipRetry) || len(b.deadLetters(t)) != 3 {
		t.Errorf("last attempt failing: %v with %d dead letters; want archived with 3", err, len(b.deadLetters(t)))
	}
}

func TestHandlerSplitsOversizeAndMixedBatches(t *testing.T) {
	b := setup(t, newAccount())
	list := append(ids(1, 2, 3, 4, 5), modelid.StringID("am-1"))
	tk := newBatch(t, list)
	for range 2 { // a second delivery enqueues nothing new
		if err := b.h.process(context.Background(), tk, attempt{taskID: "big", maxRetry: 3}); err != nil {
			t.Fatal(err)
		}
	}
	if b.acct.callCount() != 0 {
		t.Errorf("split made %d calls, want 0", b.acct.callCount())
	}
	var sizes []int
	for _, q := range b.q.tasks {
		p, _ := DecodePayload(q.t.Payload())
		sizes = append(sizes, len(p.IDs))
	}
	if diff := cmp.Diff([]int{4, 1, 1}, sizes); diff != "" {
		t.Errorf("child sizes (-want +got):\n%s", diff)
	}
}

// TestHandlerCallCutShortByACrashIsLost: an execution that died during its
// call leaves the record "under way"; the next one counts the answer lost,
// so a rejection then waits for a listing instead of bisecting.
func TestHandlerCallCutShortByACrashIsLost(t *testing.T) {
	acct := newAccount()
	b := setup(t, acct)
	ctx := context.Background()
	if _, err := b.ledger.BeginCall(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	err := b.h.process(ctx, newBatch(t, ids(1, 2, 3)), attempt{taskID: "p", maxRetry: 3})
	var te *ThrottleError
	if !errors.As(err, &te) {
		t.Fatalf("rejection after a crash mid-call: %v, want a wait for a listing", err)
	}
	if c, _ := b.ledger.Call(ctx, "p"); c.State != ledger.CallInDoubt || !c.Doubted() {
		t.Errorf("call record %+v, want in doubt since the lost answer", c)
	}
	if len(b.q.tasks) != 0 {
		t.Errorf("%d tasks enqueued, want none (no bisection on doubt)", len(b.q.tasks))
	}
}

func TestHandlerKeepsCallMarkWhenRecordingFails(t *testing.T) {
	b := setup(t, newAccount(ids(1, 2)...))
	ctx := context.Background()
	// Redis refuses the ledger write right after the call succeeded: the
	// outcome is not recorded, so the write-ahead mark must stay.
	var failWrites atomic.Bool
	b.rdb.AddHook(failHSet{&failWrites})
	b.h.del = &hookDeleter{Deleter: b.acct, before: func() { failWrites.Store(true) }}
	if err := b.h.process(ctx, newBatch(t, ids(1, 2)), attempt{taskID: "p", maxRetry: 3}); err == nil {
		t.Fatal("a failed ledger write was not reported")
	}
	failWrites.Store(false)
	c, err := b.ledger.BeginCall(ctx, "p")
	if err != nil || !c.Doubted() {
		t.Errorf("the next execution's record %+v (%v); want the answer counted lost", c, err)
	}
}

type hookDeleter struct {
	Deleter
	before func()
}

func (h *hookDeleter) Delete(ctx context.Context, k modelid.Kind, ids []modelid.ID) (qianfan.Result, error) {
	r, err := h.Deleter.Delete(ctx, k, ids)
	h.before()
	return r, err
}

// failHSet makes pipelines holding HSET or the ledger's write script fail
// while on is set.
type failHSet struct{ on *atomic.Bool }

func (failHSet) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (failHSet) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (f failHSet) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if f.on.Load() {
			for _, c := range cmds {
				if n := c.Name(); n == "hset" || n == "evalsha" || n == "eval" {
					return errors.New("injected: Redis refused the write")
				}
			}
		}
		return next(ctx, cmds)
	}
}

// guard is an in-use view: the IDs it maps are used by what it names,
// every other ID is free.
type guard map[modelid.ID]string

func (g guard) Check(_ context.Context, _ modelid.Kind, list []modelid.ID) ([]inuse.Result, error) {
	out := make([]inuse.Result, len(list))
	for i, id := range list {
		out[i] = inuse.Result{ID: id, State: inuse.Free}
		if s, ok := g[id]; ok {
			out[i] = inuse.Result{ID: id, State: inuse.InUse, Users: []string{s}, Reason: "used by " + s}
		}
	}
	return out, nil
}

// cannotTell is an in-use view whose listings fail.
type cannotTell struct{ cause error }

func (c cannotTell) Check(context.Context, modelid.Kind, []modelid.ID) ([]inuse.Result, error) {
	return nil, fmt.Errorf("%w: %w", inuse.ErrCannotTell, c.cause)
}

// TestHandlerProtectsWhatIsInUse: IDs in use are skipped right before the
// call whatever put the batch in the queue (a direct request here, a rule's
// run below), recorded protected naming the user; the rest is deleted.
// delete_in_use overrides, per request, and is recorded.
func TestHandlerProtectsWhatIsInUse(t *testing.T) {
	acct := newAccount(ids(1, 2, 3)...)
	b := setup(t, acct, func(c *HandlerConfig) {
		c.Guard = guard{modelid.IntID(2): "service chat (svco-1, protocol v2, Serving)"}
	})
	if err := b.h.process(context.Background(), newBatch(t, ids(1, 2, 3)), attempt{taskID: "t", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	want := []ledger.State{ledger.StateDeleted, ledger.StateProtected, ledger.StateDeleted}
	if diff := cmp.Diff(want, b.states(t, ids(1, 2, 3))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	r, _, _ := b.ledger.Lookup(context.Background(), modelid.KindModel, modelid.IntID(2))
	if !strings.Contains(r.Message, "service chat (svco-1, protocol v2, Serving)") {
		t.Errorf("protected record %+v does not name the service", r)
	}
	// A view that cannot tell deletes nothing, and spends no retry.
	b2 := setup(t, newAccount(ids(7)...), func(c *HandlerConfig) { c.Guard = cannotTell{errors.New("page 2 failed")} })
	err := b2.h.process(context.Background(), newBatch(t, ids(7)), attempt{taskID: "t", maxRetry: 3})
	if _, waits := errors.AsType[*ThrottleError](err); !waits || b2.acct.callCount() != 0 {
		t.Errorf("cannot tell: %v, %d calls; want a wait and no call", err, b2.acct.callCount())
	}
	// A listing that failed with a transient answer cannot tell either:
	// the batch waits, with its retries used up, and nothing is dead.
	b5 := setup(t, newAccount(ids(9)...), func(c *HandlerConfig) { c.Guard = cannotTell{&qianfan.Error{HTTPStatus: 503}} })
	err = b5.h.process(context.Background(), newBatch(t, ids(9)), attempt{taskID: "t", retried: 3, maxRetry: 3})
	if _, waits := errors.AsType[*ThrottleError](err); !waits || b5.acct.callCount() != 0 {
		t.Errorf("cannot tell (503): %v, %d calls; want a wait and no call", err, b5.acct.callCount())
	}
	if st := b5.states(t, ids(9)); st[0] != "" {
		t.Errorf("cannot tell (503): recorded %v, want nothing", st[0])
	}
	// Listings refused for credentials pause the fleet like a refused delete.
	b3 := setup(t, newAccount(ids(8)...), func(c *HandlerConfig) {
		c.Guard = cannotTell{&qianfan.Error{HTTPStatus: 403, GatewayCode: "AccessDenied"}}
		c.Pause = fleet.NewPauseStore(b2.rdb)
	})
	err = b3.h.process(context.Background(), newBatch(t, ids(8)), attempt{taskID: "t", maxRetry: 3})
	if st, _ := fleet.NewPauseStore(b2.rdb).Status(context.Background()); st.State != fleet.Paused || b3.acct.callCount() != 0 {
		t.Errorf("a refused listing: %v, fleet %v, %d calls; want paused, no call", err, st.State, b3.acct.callCount())
	}
	// The override, per request.
	b4 := setup(t, newAccount(ids(4, 5)...), func(c *HandlerConfig) { c.Guard = guard{modelid.IntID(5): "svc-prod"} })
	if err := b4.h.process(context.Background(), newBatch(t, ids(4, 5), func(p *Payload) { p.DeleteInUse = true }), attempt{taskID: "t", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ledger.State{ledger.StateDeleted, ledger.StateDeleted}, b4.states(t, ids(4, 5))); diff != "" {
		t.Errorf("delete_in_use states (-want +got):\n%s", diff)
	}
}

// TestHandlerProtectsRuleDeletions: IDs a service uses are skipped right
// before the call when a rule planned the deletion, and recorded protected.
func TestHandlerProtectsRuleDeletions(t *testing.T) {
	acct := newAccount(ids(1, 2, 3)...)
	b := setup(t, acct, func(c *HandlerConfig) { c.Guard = guard{modelid.IntID(2): "svc-prod"} })
	run := func(p *Payload) { p.Run, p.Rule = "run-1", "ci-leftovers" }
	if err := b.h.process(context.Background(), newBatch(t, ids(1, 2, 3), run), attempt{taskID: "t", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	want := []ledger.State{ledger.StateDeleted, ledger.StateProtected, ledger.StateDeleted}
	if diff := cmp.Diff(want, b.states(t, ids(1, 2, 3))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	r, _, _ := b.ledger.Lookup(context.Background(), modelid.KindModel, modelid.IntID(2))
	if r.Run != "run-1" || r.Message == "" {
		t.Errorf("protected record %+v, want its run and the service named", r)
	}
	// Without a guard, no batch is deleted unchecked: it waits.
	b2 := setup(t, newAccount(ids(7)...), func(c *HandlerConfig) { c.Guard = nil })
	err := b2.h.process(context.Background(), newBatch(t, ids(7)), attempt{taskID: "t", maxRetry: 3})
	if _, waits := errors.AsType[*ThrottleError](err); !waits || b2.acct.callCount() != 0 {
		t.Errorf("unguarded batch: %v, %d calls; want a wait and no call", err, b2.acct.callCount())
	}
	// protect_in_use: false deletes what a service uses, and still names the run.
	b3 := setup(t, newAccount(ids(4, 5)...), func(c *HandlerConfig) { c.Guard = guard{modelid.IntID(5): "svc-prod"} })
	inUse := func(p *Payload) { run(p); p.DeleteInUse = true }
	if err := b3.h.process(context.Background(), newBatch(t, ids(4, 5), inUse), attempt{taskID: "t", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ledger.State{ledger.StateDeleted, ledger.StateDeleted}, b3.states(t, ids(4, 5))); diff != "" {
		t.Errorf("delete_in_use states (-want +got):\n%s", diff)
	}
	if r, _, _ := b3.ledger.Lookup(context.Background(), modelid.KindModel, modelid.IntID(5)); r.Run != "run-1" {
		t.Errorf("delete_in_use record %+v, want its run", r)
	}
}

func TestHandlerHoldsDuringAListing(t *testing.T) {
	b := setup(t, newAccount(ids(1)...))
	ctx := context.Background()
	if err := b.inv.Hold(ctx, "test", time.Minute); err != nil {
		t.Fatal(err)
	}
	err := b.h.process(ctx, newBatch(t, ids(1)), attempt{taskID: "t", maxRetry: 3})
	var te *ThrottleError
	if !errors.As(err, &te) || b.acct.callCount() != 0 {
		t.Errorf("held: %v with %d calls; want a wait and no call", err, b.acct.callCount())
	}
}

// refusing answers 401 InvalidAccessKeyId until allowed.
type refusing struct {
	*account
	allowed atomic.Bool
}

func (r *refusing) Delete(ctx context.Context, k modelid.Kind, list []modelid.ID) (qianfan.Result, error) {
	if !r.allowed.Load() {
		r.mu.Lock()
		r.calls = append(r.calls, slices.Clone(list))
		r.mu.Unlock()
		return qianfan.Result{}, &qianfan.Error{HTTPStatus: 401, ErrorCode: "InvalidAccessKeyId", Message: "unknown access key"}
	}
	return r.account.Delete(ctx, k, list)
}

// TestHandlerPausesOnRefusedCredentials: a refused request pauses the fleet
// instead of dead-lettering; paused batches make no call; after a probe, one
// batch tests the credentials and its success resumes the fleet.
func TestHandlerPausesOnRefusedCredentials(t *testing.T) {
	acct := &refusing{account: newAccount(ids(1, 2, 3, 4)...)}
	rdb := redistest.Start(t).Client(t)
	ps := fleet.NewPauseStore(rdb)
	b := setup(t, acct.account, func(c *HandlerConfig) { c.Pause = ps })
	b.h.del = acct
	ctx := context.Background()
	err := b.h.process(ctx, newBatch(t, ids(1, 2)), attempt{taskID: "a", maxRetry: 3})
	var te *ThrottleError
	if !errors.As(err, &te) || IsFailure(err) {
		t.Fatalf("refused credentials: %v; want a wait that uses no retry", err)
	}
	st, _ := ps.Status(ctx)
	if st.State != fleet.Paused || !strings.Contains(st.Reason, "unknown access key") {
		t.Errorf("pause %+v; want paused naming the problem", st)
	}
	if n := len(b.deadLetters(t)); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
	calls := acct.callCount()
	if err := b.h.process(ctx, newBatch(t, ids(3, 4)), attempt{taskID: "b", maxRetry: 3}); !errors.As(err, &te) || acct.callCount() != calls {
		t.Errorf("paused batch: %v with %d new calls; want a wait and no call", err, acct.callCount()-calls)
	}
	acct.allowed.Store(true)
	if err := ps.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.h.process(ctx, newBatch(t, ids(1, 2)), attempt{taskID: "a", maxRetry: 3}); err != nil {
		t.Fatalf("the canary batch: %v", err)
	}
	if st, _ := ps.Status(ctx); st.State != fleet.Running {
		t.Errorf("after the canary went through %+v; want running", st)
	}
	if err := b.h.process(ctx, newBatch(t, ids(3, 4)), attempt{taskID: "b", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(repeat(ledger.StateDeleted, 4), b.states(t, ids(1, 2, 3, 4))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
}

func strs(ss ...string) []modelid.ID {
	out := make([]modelid.ID, len(ss))
	for i, s := range ss {
		out[i] = modelid.StringID(s)
	}
	return out
}

// TestHandlerV2DeletesOneIDPerCall: on V2 every ID is its own call and its
// own outcome; a retry calls only the IDs left; an ID that does not exist
// is settled by a listing and dead-lettered once.
func TestHandlerV2DeletesOneIDPerCall(t *testing.T) {
	acct := newAccount(strs("am-a", "am-b", "am-c")...)
	acct.fault = func(n int) string { return map[int]string{1: "503"}[n] }
	rdb := redistest.Start(t).Client(t)
	b := setup(t, acct, func(c *HandlerConfig) { c.API = fleet.NewAPIModeStore(rdb, fleet.V2) })
	res := b.drain(t, newBatch(t, strs("am-a", "am-b", "am-c", "am-missing")), "p", func() { acct.snapshot(t, b.inv) })
	want := []ledger.State{ledger.StateDeleted, ledger.StateDeleted, ledger.StateDeleted, ledger.StateDead}
	if diff := cmp.Diff(want, b.states(t, strs("am-a", "am-b", "am-c", "am-missing"))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	calls := map[string]int{}
	for _, c := range acct.calls {
		calls[c[0].String()]++
	}
	// am-a once; am-b failed once (503) and again on the retry; am-missing
	// once, then once more alone after the listing.
	if diff := cmp.Diff(map[string]int{"am-a": 1, "am-b": 2, "am-c": 1, "am-missing": 2}, calls); diff != "" {
		t.Errorf("calls per ID (-want +got):\n%s", diff)
	}
	if len(b.deadLetters(t)) != 1 || len(res.archived) != 1 {
		t.Errorf("%d dead letters, archived %v; want one each", len(b.deadLetters(t)), res.archived)
	}
	r, _, _ := b.ledger.Lookup(context.Background(), modelid.KindModel, modelid.StringID("am-a"))
	if r.API != "v2" {
		t.Errorf("record %+v does not say V2 did it", r)
	}
}

// TestHandlerV2TakesIntIDsThroughTheirPairs: an int ID is sent as the string
// form a listing showed; one no listing showed is dead-lettered saying so.
func TestHandlerV2TakesIntIDsThroughTheirPairs(t *testing.T) {
	acct := newAccount(modelid.IntID(585))
	acct.byString = map[string]modelid.ID{"am-585": modelid.IntID(585)}
	rdb := redistest.Start(t).Client(t)
	b := setup(t, acct, func(c *HandlerConfig) { c.API = fleet.NewAPIModeStore(rdb, fleet.V2) })
	ctx := context.Background()
	if err := b.inv.Learn(ctx, modelid.KindModel, 585, "am-585"); err != nil {
		t.Fatal(err)
	}
	err := b.h.process(ctx, newBatch(t, ids(585, 586)), attempt{taskID: "t", maxRetry: 3})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ledger.State{ledger.StateDeleted, ledger.StateDead}, b.states(t, ids(585, 586))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	r, _, _ := b.ledger.Lookup(ctx, modelid.KindModel, modelid.IntID(586))
	if !strings.Contains(r.Message, "no listing has shown this int ID's am- form") {
		t.Errorf("dead letter reason %q does not say the string form is unknown", r.Message)
	}
	if diff := cmp.Diff([][]modelid.ID{strs("am-585")}, acct.calls, cmp.AllowUnexported(modelid.ID{})); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestHandlerAutoSwitchesToV2: V1 answers that it is gone; the fleet switches
// once and the same execution deletes the batch through V2.
func TestHandlerAutoSwitchesToV2(t *testing.T) {
	acct := newAccount(strs("am-a", "am-b")...)
	acct.v1Gone = true
	rdb := redistest.Start(t).Client(t)
	api := fleet.NewAPIModeStore(rdb, fleet.Auto)
	b := setup(t, acct, func(c *HandlerConfig) { c.API = api })
	ctx := context.Background()
	if err := b.h.process(ctx, newBatch(t, strs("am-a", "am-b")), attempt{taskID: "t", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(repeat(ledger.StateDeleted, 2), b.states(t, strs("am-a", "am-b"))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if m, _ := api.Effective(ctx); m != fleet.V2 {
		t.Errorf("effective API %v after V1 answered gone, want v2", m)
	}
	if len(b.deadLetters(t)) != 0 {
		t.Error("a batch was dead-lettered because V1 went away")
	}
	// A second batch goes straight to V2; the switch is recorded once.
	acct.exists[modelid.StringID("am-c")] = true
	if err := b.h.process(ctx, newBatch(t, strs("am-c")), attempt{taskID: "t2", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	evs, _ := b.rdb.XRange(ctx, ledger.EventStream, "-", "+").Result()
	switched := 0
	for _, ev := range evs {
		if ev.Values["outcome"] == "switched" {
			switched++
		}
	}
	if switched != 1 {
		t.Errorf("%d switch events, want 1", switched)
	}
	if acct.v2calls != 3 {
		t.Errorf("%d V2 calls, want 3", acct.v2calls)
	}
}

// TestHandlerLostRecheckAnswerUnlistedIsNotDead: a recheck batch holding a
// model that exists but no listing returns (no detail call showed it
// missing) deletes it and loses the answer: a listing's absence is no
// evidence it never existed, so it is not dead-lettered.
func TestHandlerLostRecheckAnswerUnlistedIsNotDead(t *testing.T) {
	acct := newAccount(ids(5)...)
	acct.fault = func(n int) string { return map[int]string{0: "drop"}[n] }
	b := setup(t, acct)
	tk := newBatch(t, ids(5), func(p *Payload) { p.Split, p.Parent, p.LostIn = "recheck", "p0", "p0" })
	res := b.drain(t, tk, "p0-recheck", func() {
		seq, err := b.inv.Stamp(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		empty := &inventory.Snapshot{Taken: time.Now(), Seq: seq, Decides: []inventory.Form{{Kind: modelid.KindModel, Type: modelid.IDInt}}}
		if err := b.inv.Save(context.Background(), empty); err != nil {
			t.Fatal(err)
		}
	})
	if st := b.states(t, ids(5)); st[0] == ledger.StateDead || len(b.deadLetters(t)) != 0 || len(res.archived) != 0 {
		t.Errorf("state %v, %d dead letters, archived %v; an existing model must not be dead", st, len(b.deadLetters(t)), res.archived)
	}
}

// TestHandlerDetailReadCutShortWaits: the detail read before a small
// batch's call fails with a transient answer on the last attempt: the
// batch waits without a call, and nothing is recorded or dead-lettered.
func TestHandlerDetailReadCutShortWaits(t *testing.T) {
	acct := newAccount(ids(6)...)
	b := setup(t, acct)
	b.h.del = describeFails{acct}
	err := b.h.process(context.Background(), newBatch(t, ids(6)), attempt{taskID: "t", retried: 3, maxRetry: 3})
	if _, waits := errors.AsType[*ThrottleError](err); !waits || acct.callCount() != 0 {
		t.Errorf("detail read 503: %v, %d calls; want a wait and no call", err, acct.callCount())
	}
	if st := b.states(t, ids(6)); st[0] != "" || len(b.deadLetters(t)) != 0 {
		t.Errorf("detail read 503: recorded %v, %d dead letters; want nothing", st[0], len(b.deadLetters(t)))
	}
}

type describeFails struct{ *account }

func (describeFails) Describe(context.Context, modelid.Kind, modelid.ID) (bool, modelid.ID, error) {
	return false, modelid.ID{}, &qianfan.Error{HTTPStatus: 503, Message: "Service Unavailable"}
}

// TestHandlerRejectedJobOfAGroup: a job of a group that could not be read
// is recorded dead under no kind (it names no ID of the batch's kind),
// and the group's readable IDs go on.
func TestHandlerRejectedJobOfAGroup(t *testing.T) {
	acct := newAccount(ids(1)...)
	b := setup(t, acct)
	tk := newBatch(t, ids(1), func(p *Payload) { p.Rejected = []string{"{not json"} })
	if err := b.h.process(context.Background(), tk, attempt{taskID: "t", maxRetry: 3}); err != nil {
		t.Fatal(err)
	}
	if st := b.states(t, ids(1)); st[0] != ledger.StateDeleted {
		t.Errorf("the readable ID: %v, want deleted", st)
	}
	recs, err := b.ledger.LookupMany(context.Background(), "", []modelid.ID{modelid.StringID("unreadable")})
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].State != ledger.StateDead || recs[0].API != "" || !strings.Contains(recs[0].Message, "{not json") {
		t.Errorf("the unreadable job: %+v, want dead under no kind, no API, its text kept", recs[0])
	}
}
