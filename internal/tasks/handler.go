package tasks

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/inuse"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/tracing"
)

// Enqueuer is the part of *asynq.Client the handler needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Guard tells, right before a call, which IDs a service or a batch
// inference task uses (inuse.View). An error wrapping inuse.ErrCannotTell
// means the listings could not be read completely: nothing is deleted.
type Guard interface {
	Check(ctx context.Context, k modelid.Kind, ids []modelid.ID) ([]inuse.Result, error)
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
	// "unknown", "throttled", "verify" (waiting for a listing), "in-use",
	// "names" (waiting for a listing to learn names), "hold" or "paused".
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
	// Guard checks every batch right before its call, whatever put it in
	// the queue, unless the request said delete_in_use; nil refuses them
	// (they wait, never deleted unchecked).
	Guard Guard
	// VerifyPoll is how often a batch waiting for a listing looks again.
	// Defaults to 5s.
	VerifyPoll time.Duration
	// Pause is the fleet's pause; nil turns pausing off (a refused request
	// is then retried like a transient failure, never dead-lettered).
	Pause *fleet.PauseStore
	// PausePoll is how often a batch waiting out a pause looks again.
	// Defaults to 10s.
	PausePoll time.Duration
	// API says which Qianfan API to delete through; nil means V1 only.
	API *fleet.APIModeStore
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer defaults to one that ignores everything.
	Observer Observer
	// Clock defaults to the wall clock.
	Clock fleet.Clock
	// Finder, when set, settles a batch in doubt by reading its IDs by
	// name (about one call per ID) when that costs less than a listing of
	// the account; nil: always a listing.
	Finder Finder
	// ProbeAfter is how old a lost answer must be before its IDs are read
	// by name: time for a lost call still in flight to land before the
	// read. Defaults to 10s.
	ProbeAfter time.Duration
	// TracerProvider starts a span per execution (see startSpan); nil
	// traces nothing.
	TracerProvider trace.TracerProvider
}

// Handler processes TypeDelete and TypeDeleteBatch tasks. Each execution
// runs three steps, in the shape of river's executor:
//
//   - execute: every call to Qianfan (V1's batchDelete, V2's per-ID calls,
//     the detail and listing reads) and the reads of Redis that gather the
//     facts (Facts); the batch's call record is written ahead of each call,
//     so an execution cut short is known to have lost its answer;
//   - decide: Decide, a pure function from facts to a decision, for a V1
//     batch, each V2 call and each ID a listing settles;
//   - report: the one writer of outcomes (and their events and dead
//     letters), split batches, fleet events and the task's result, which
//     ends the task in exactly one Asynq ending (done; retry; wait without
//     spending a retry; archive). So an Asynq retry repeats exactly one
//     call, and every branch is in Decide's table test.
//
// Qianfan answers "500001 param invalid" for a whole list when one ID in it
// is missing, which is also how it answers IDs a lost call already deleted.
// A rejection with no lost answer behind it is bisected down to the bad IDs;
// one after a lost answer waits for a complete listing (package inventory)
// and is settled by it. Nothing is recorded deleted on a guess.
type Handler struct {
	del    Deleter
	q      Enqueuer
	ledger *ledger.Ledger
	inv    *inventory.Store
	cfg    HandlerConfig
	log    *slog.Logger
	obs    Observer
	now    func() time.Time
	tr     trace.Tracer
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
	if cfg.ProbeAfter <= 0 {
		cfg.ProbeAfter = 10 * time.Second
	}
	cfg.Clock = fleet.Or(cfg.Clock)
	h := &Handler{del: del, q: q, ledger: l, inv: inv, cfg: cfg, log: cfg.Logger, obs: cfg.Observer, now: cfg.Clock.Now,
		tr: tracing.Tracer(cfg.TracerProvider)}
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
	ctx, span := h.startSpan(ctx, t, a)
	err := h.process(ctx, t, a)
	span.end(err)
	return err
}

// batch is one execution's batch and what it has learnt so far.
type batch struct {
	t      *asynq.Task
	a      attempt
	p      Payload
	ids    []modelid.ID // still to settle
	rep    report       // what the execution leaves behind
	log    *slog.Logger
	answer *qianfan.Error // the call's error, when it failed with an answer
	start  time.Time      // of the call
	canary bool           // this call tests the credentials of a paused fleet
	api    fleet.APIMode  // the API this execution deletes through
	call   ledger.Call    // the batch's call record as this execution found it
	// probed: the batch in doubt was read by name rather than listed;
	// readAt is when that read or the listing started.
	probed bool
	readAt time.Time
}

func (h *Handler) process(ctx context.Context, t *asynq.Task, a attempt) error {
	b := &batch{t: t, a: a, log: h.log.With("task_id", a.taskID)}
	return h.report(ctx, b, h.execute(ctx, b))
}

// execute runs the batch through its decision and act, leaving in b.rep
// what to write. It returns an error when it stops before deciding: a
// ThrottleError to wait, anything else to retry.
func (h *Handler) execute(ctx context.Context, b *batch) error {
	p, err := DecodePayload(b.t.Payload())
	if err != nil {
		h.unreadable(b, string(b.t.Payload()), err)
		b.rep.archive(err.Error())
		return nil
	}
	b.p = p
	b.rep.res.Kind = p.Kind
	for _, raw := range p.Rejected {
		h.unreadable(b, raw, errors.New("a job in this group could not be read"))
	}
	if len(p.IDs) == 0 {
		b.rep.finish()
		return nil
	}
	ids := modelid.Dedupe(p.IDs)
	b.log = b.log.With("kind", p.Kind, "id_type", ids[0].Type())
	if ints, strs := modelid.SplitByType(ids); len(ids) > h.cfg.BatchSize || (len(ints) > 0 && len(strs) > 0) {
		h.fanOut(b, ints, strs)
		return nil
	}
	if b.a.retried > 0 {
		b.log = b.log.With("retry", b.a.retried)
	}
	if p.Run != "" {
		b.log = b.log.With("run", p.Run, "rule", p.Rule)
	}
	gone, byID, err := h.ledger.Before(ctx, p.Kind, ids)
	if err != nil {
		return err
	}
	if b.call, err = h.ledger.Call(ctx, b.a.taskID); err != nil {
		return err
	}
	byOther, err := h.goneAsOther(ctx, b, ids, gone)
	if err != nil {
		return err
	}
	for _, id := range ids {
		switch {
		case gone[id]:
			b.rep.res.AlreadyDeleted = append(b.rep.res.AlreadyDeleted, id)
		case byOther[id]:
			// Recorded deleted under its other form just now.
		case slices.Contains(b.call.Done, id):
			// Settled by an earlier execution of this task (V2 records
			// each ID as it goes): a retry calls only the others.
		default:
			b.ids = append(b.ids, id)
		}
	}
	if err := h.dropCancelled(ctx, b, byID); err != nil {
		return err
	}
	if len(b.ids) == 0 {
		b.rep.finish()
		return nil
	}
	if b.api, err = h.effective(ctx); err != nil {
		return err
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("qfpurge.api", string(b.api)))
	defer h.releaseCanary(ctx, b)
	f, err := h.gather(ctx, b)
	if err != nil || f == nil {
		return err
	}
	return h.act(ctx, b, *f)
}
