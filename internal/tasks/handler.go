package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/apimode"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/pause"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Enqueuer is the part of *asynq.Client the handler needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Guard tells which IDs a service uses, so a deletion planned by a rule can
// skip them; it names the services. An error means it could not tell.
type Guard interface {
	Protected(ctx context.Context, k modelid.Kind, ids []modelid.ID) (map[modelid.ID]string, error)
}

// Observer is told what the handler does, for metrics. All methods must be
// safe for concurrent use.
type Observer interface {
	// Call reports one API call: its outcome ("ok" or the error code), how
	// many IDs it carried and how long it took.
	Call(k modelid.Kind, t modelid.IDType, outcome string, ids int, d time.Duration)
	// Outcome reports IDs reaching an end state.
	Outcome(k modelid.Kind, t modelid.IDType, state ledger.State, ids int)
	// Split reports a batch split; why is "bisect", "oversize" or "again"
	// (IDs a listing showed still present after a lost answer).
	Split(k modelid.Kind, why string)
	// Retry reports a batch handed back to Asynq; why is "transient",
	// "unknown", "throttled", "verify" (waiting for a listing), "hold" or
	// "paused".
	Retry(k modelid.Kind, why string)
	// Fleet reports a change of the whole fleet: "paused", "resumed".
	Fleet(event string)
}

type nopObserver struct{}

func (nopObserver) Call(modelid.Kind, modelid.IDType, string, int, time.Duration) {}
func (nopObserver) Outcome(modelid.Kind, modelid.IDType, ledger.State, int)       {}
func (nopObserver) Split(modelid.Kind, string)                                    {}
func (nopObserver) Retry(modelid.Kind, string)                                    {}
func (nopObserver) Fleet(string)                                                  {}

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// BatchSize is the most IDs sent in one call. Defaults to DefaultBatchSize.
	BatchSize int
	// Options are given to the batches the handler enqueues.
	Options Options
	// Guard checks deletions planned by rules; nil refuses them (they wait
	// and are retried, never deleted unchecked).
	Guard Guard
	// VerifyPoll is how often a batch waiting for a listing looks again.
	// Defaults to 5s.
	VerifyPoll time.Duration
	// Pause is the fleet's pause; nil turns pausing off (a refused request
	// is then retried like a transient failure, never dead-lettered).
	Pause *pause.Store
	// PausePoll is how often a batch waiting out a pause looks again.
	// Defaults to 10s.
	PausePoll time.Duration
	// API says which Qianfan API to delete through; nil means V1 only.
	API *apimode.Store
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer defaults to one that ignores everything.
	Observer Observer
}

// Handler processes TypeDelete and TypeDeleteBatch tasks. Each execution
// gathers the facts (the ledger, the batch's call record, at most one delete
// call), lets Decide choose an action, and applies it with one method per
// action, each ending the call record explicitly. So an Asynq retry repeats
// exactly one call, and every branch is in Decide's table test.
//
// Qianfan answers "500001 param invalid" for a whole list when one ID in it
// is missing, which is also how it answers IDs a lost call already deleted.
// A rejection with no lost answer behind it is bisected down to the bad IDs;
// one after a lost answer waits for a complete listing (package inventory)
// and is settled by it (Settle). Nothing is recorded deleted on a guess.
type Handler struct {
	del    Deleter
	q      Enqueuer
	ledger *ledger.Ledger
	inv    *inventory.Store
	cfg    HandlerConfig
	log    *slog.Logger
	obs    Observer
}

// NewHandler returns a Handler.
func NewHandler(del Deleter, q Enqueuer, l *ledger.Ledger, inv *inventory.Store, cfg HandlerConfig) *Handler {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.VerifyPoll <= 0 {
		cfg.VerifyPoll = 5 * time.Second
	}
	if cfg.PausePoll <= 0 {
		cfg.PausePoll = 10 * time.Second
	}
	h := &Handler{del: del, q: q, ledger: l, inv: inv, cfg: cfg, log: cfg.Logger, obs: cfg.Observer}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.obs == nil {
		h.obs = nopObserver{}
	}
	return h
}

// attempt is what Asynq tells a handler about the current execution.
type attempt struct {
	taskID   string
	retried  int
	maxRetry int
}

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var a attempt
	a.taskID, _ = asynq.GetTaskID(ctx)
	a.retried, _ = asynq.GetRetryCount(ctx)
	a.maxRetry, _ = asynq.GetMaxRetry(ctx)
	return h.process(ctx, t, a)
}

// batch is one execution's batch and what it has learnt so far.
type batch struct {
	t      *asynq.Task
	a      attempt
	p      Payload
	ids    []modelid.ID // still to settle
	res    Result
	log    *slog.Logger
	answer *qianfan.Error // the call's error, when it failed with an answer
	start  time.Time      // of the call
	canary bool           // this call tests the credentials of a paused fleet
	api    apimode.Mode   // the API this execution deletes through
	call   ledger.Call    // the batch's call record as this execution found it
}

func (h *Handler) process(ctx context.Context, t *asynq.Task, a attempt) error {
	p, err := DecodePayload(t.Payload())
	if err != nil {
		return h.unreadable(ctx, a.taskID, string(t.Payload()), err)
	}
	for _, raw := range p.Rejected {
		if err := h.unreadable(ctx, a.taskID, raw, errors.New("a job in this group could not be read")); err != nil && !errors.Is(err, asynq.SkipRetry) {
			return err
		}
	}
	if len(p.IDs) == 0 {
		return nil
	}
	ids := modelid.Dedupe(p.IDs)
	if ints, strs := modelid.SplitByType(ids); len(ids) > h.cfg.BatchSize || (len(ints) > 0 && len(strs) > 0) {
		return h.fanOut(ctx, t, a.taskID, p, ints, strs)
	}
	b := &batch{t: t, a: a, p: p, res: Result{Kind: p.Kind}}
	b.log = h.log.With("task_id", a.taskID, "kind", p.Kind, "id_type", ids[0].Type())
	if a.retried > 0 {
		b.log = b.log.With("retry", a.retried)
	}
	if p.Run != "" {
		b.log = b.log.With("run", p.Run, "rule", p.Rule)
	}
	gone, err := h.ledger.Gone(ctx, p.Kind, ids)
	if err != nil {
		return err
	}
	if b.call, err = h.ledger.Call(ctx, a.taskID); err != nil {
		return err
	}
	for _, id := range ids {
		switch {
		case gone[id]:
			b.res.AlreadyDeleted = append(b.res.AlreadyDeleted, id)
		case slices.Contains(b.call.Done, id):
			// Settled by an earlier execution of this task (V2 records
			// each ID as it goes): a retry calls only the others.
		default:
			b.ids = append(b.ids, id)
		}
	}
	if len(b.ids) == 0 {
		return h.finish(ctx, b)
	}
	if b.api, err = h.effective(ctx); err != nil {
		return err
	}
	f, err := h.gather(ctx, b)
	if err != nil || f == nil {
		return err
	}
	return h.act(ctx, b, *f)
}

// gather collects the facts, making the V1 delete call when one is due;
// on V2 it runs the batch's calls itself (processV2). A nil Facts with a nil
// error means the batch ended while gathering.
func (h *Handler) gather(ctx context.Context, b *batch) (*Facts, error) {
	f, err := h.precheck(ctx, b)
	if err != nil || f == nil {
		return nil, err
	}
	if f.Call.State == ledger.CallInDoubt || f.Held || f.Paused {
		return f, nil
	}
	if b.api == apimode.V2 {
		return nil, h.processV2(ctx, b, f.Call)
	}
	return h.callV1(ctx, b, f)
}

// precheck reads what decides whether a call is due at all: the batch's call
// record (and, in doubt, whether a listing answers), a listing's hold, the
// fleet's pause, and for a rule's batch the services using its IDs.
func (h *Handler) precheck(ctx context.Context, b *batch) (*Facts, error) {
	f := &Facts{N: len(b.ids), Retried: b.a.retried, MaxRetry: b.a.maxRetry, Auto: h.auto(b), Call: b.call}
	call := b.call
	var err error
	if call.State == ledger.CallInDoubt {
		_, _, err := h.inv.Check(ctx, b.p.Kind, b.ids, call.Lost)
		switch {
		case errors.Is(err, inventory.ErrNoSnapshot):
		case err != nil:
			return nil, err
		default:
			f.Listed = true
		}
		return f, nil
	}
	if f.Held, err = h.inv.Held(ctx); err != nil || f.Held {
		return f, err
	}
	if f.Paused, err = h.paused(ctx, b); err != nil || f.Paused {
		return f, err
	}
	if b.p.Run != "" && !b.p.DeleteInUse {
		if err := h.guard(ctx, b); err != nil || len(b.ids) == 0 {
			if err == nil {
				err = h.finish(ctx, b)
			}
			return nil, err
		}
		f.N = len(b.ids)
	}
	return f, nil
}

// callV1 makes the batch's one V1 delete call.
func (h *Handler) callV1(ctx context.Context, b *batch, f *Facts) (*Facts, error) {
	call := f.Call
	var err error
	// A recheck batch is already known absent: nothing to show.
	if call.State == "" && len(b.ids) < inferMin && b.p.Split != "recheck" {
		if err := h.notePresent(ctx, b); err != nil {
			return nil, err
		}
	}
	if f.Call, err = h.ledger.BeginCall(ctx, b.a.taskID); err != nil {
		return nil, err
	}
	if f.Call.Doubted() && !call.Doubted() {
		b.log.Warn("an earlier execution died during its call: its answer is lost")
	}
	b.start = time.Now()
	res, err := h.del.Delete(ctx, b.p.Kind, b.ids)
	if ctx.Err() != nil {
		// Shutting down or timed out: the call record stays "under way", so
		// the next execution counts the call as possibly applied.
		return nil, ctx.Err()
	}
	f.Called, f.Err = true, err
	qe, _ := errors.AsType[*qianfan.Error](err)
	b.answer = qe
	f.Lost = res.Ambiguous || (qe != nil && qe.Ambiguous)
	b.res.LogID, b.res.Attempts = res.LogID, res.Attempts
	if qe != nil {
		b.res.LogID, b.res.Attempts = qe.LogID, qe.Attempts
	}
	if b.res.LogID != "" {
		b.log = b.log.With("log_id", b.res.LogID)
	}
	h.obs.Call(b.p.Kind, b.ids[0].Type(), callOutcome(err), len(b.ids), time.Since(b.start))
	return f, nil
}

// paused reports whether the fleet's deletions are paused for this batch:
// while the credentials are being tested, one batch gets the call.
func (h *Handler) paused(ctx context.Context, b *batch) (bool, error) {
	if h.cfg.Pause == nil {
		return false, nil
	}
	st, err := h.cfg.Pause.Status(ctx)
	if err != nil || st.State == pause.Running {
		return false, err
	}
	if st.State == pause.Probing {
		got, err := h.cfg.Pause.Canary(ctx, b.a.taskID, 2*time.Minute)
		if err != nil || got {
			b.canary = got
			return false, err
		}
	}
	return true, nil
}

// guard drops the IDs a service uses from a batch planned by a rule,
// recording them as protected.
func (h *Handler) guard(ctx context.Context, b *batch) error {
	if h.cfg.Guard == nil {
		return fmt.Errorf("batch of rule run %s: no service check configured; not deleting unchecked", b.p.Run)
	}
	used, err := h.cfg.Guard.Protected(ctx, b.p.Kind, b.ids)
	if err != nil {
		return fmt.Errorf("check services before deleting: %w", err)
	}
	if len(used) == 0 {
		return nil
	}
	var outs []ledger.Outcome
	keep := b.ids[:0:0]
	for _, id := range b.ids {
		svc, ok := used[id]
		if !ok {
			keep = append(keep, id)
			continue
		}
		outs = append(outs, ledger.Outcome{Kind: b.p.Kind, ID: id, State: ledger.StateProtected, TaskID: b.a.taskID, Run: b.p.Run,
			Message: "not deleted: used by service " + svc + " (checked right before the call)"})
		b.res.Protected = append(b.res.Protected, id)
	}
	if _, err := h.ledger.Write(ctx, outs); err != nil {
		return err
	}
	h.obs.Outcome(b.p.Kind, b.ids[0].Type(), ledger.StateProtected, len(outs))
	b.log.Warn("rule deletion skipped: used by a service", "ids", idStrings(b.res.Protected))
	b.ids = keep
	return nil
}

// notePresent records, before a small batch's first call, which of its IDs
// Qianfan shows to exist: if the call's answer is lost and a listing then
// shows them absent, this tells "the call deleted it" from "it never
// existed". A listing already saved answers without a call.
func (h *Handler) notePresent(ctx context.Context, b *batch) error {
	var present []modelid.ID
	known, _, err := h.inv.Check(ctx, b.p.Kind, b.ids, time.Time{})
	if err != nil && !errors.Is(err, inventory.ErrNoSnapshot) {
		return err
	}
	for i, id := range b.ids {
		if known != nil && known[i] == inventory.Present {
			present = append(present, id)
			continue
		}
		start := time.Now()
		found, other, err := h.del.Describe(ctx, b.p.Kind, id)
		h.obs.Call(b.p.Kind, id.Type(), describeOutcome(found, err), 1, time.Since(start))
		if err != nil {
			return err
		}
		if found {
			present = append(present, id)
			if other != (modelid.ID{}) {
				n, s := id, other
				if id.Type() == modelid.IDString {
					n, s = other, id
				}
				nv, _ := n.Int()
				if err := h.inv.Learn(ctx, b.p.Kind, nv, s.String()); err != nil {
					return err
				}
			}
		}
	}
	if len(present) == 0 {
		return nil
	}
	return h.ledger.NotePresent(ctx, b.a.taskID, present)
}

func describeOutcome(found bool, err error) string {
	switch {
	case err != nil:
		return "describe:" + callOutcome(err)
	case found:
		return "describe:found"
	}
	return "describe:not-shown"
}
