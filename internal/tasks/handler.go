package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
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
	res    Result
	log    *slog.Logger
	answer *qianfan.Error // the call's error, when it failed with an answer
	start  time.Time      // of the call
	canary bool           // this call tests the credentials of a paused fleet
	api    fleet.APIMode  // the API this execution deletes through
	call   ledger.Call    // the batch's call record as this execution found it
	// probed is the presence of each ID as reads by name showed it, started
	// at probedAt (nil: settled by a listing).
	probed   []inventory.Presence
	probedAt time.Time
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
	gone, byID, err := h.ledger.Before(ctx, p.Kind, ids)
	if err != nil {
		return err
	}
	if b.call, err = h.ledger.Call(ctx, a.taskID); err != nil {
		return err
	}
	byOther, err := h.goneAsOther(ctx, b, ids, gone)
	if err != nil {
		return err
	}
	for _, id := range ids {
		switch {
		case gone[id]:
			b.res.AlreadyDeleted = append(b.res.AlreadyDeleted, id)
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
		return h.end(ctx, b)
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

// dropCancelled takes out of the batch, before any call, the IDs whose
// request was cancelled (by its key) or which were cancelled themselves
// (byID: by ID, to who cancelled), recording them cancelled: wherever they
// waited (scheduled, in a group, queued, retrying), no call carries them
// now.
func (h *Handler) dropCancelled(ctx context.Context, b *batch, byID map[modelid.ID]string) error {
	keys := map[string]bool{}
	for _, id := range b.ids {
		if k, _ := b.p.OriginOf(id); k != "" {
			keys[k] = true
		}
	}
	if len(keys) == 0 && len(byID) == 0 {
		return nil
	}
	cancelled, err := h.ledger.Cancelled(ctx, slices.Collect(maps.Keys(keys)))
	if err != nil {
		return err
	}
	var outs []ledger.Outcome
	var marked []modelid.ID
	keep := b.ids[:0:0]
	for _, id := range b.ids {
		k, _ := b.p.OriginOf(id)
		o := h.outcome(b, id, ledger.StateCancelled, nil)
		if by, ok := cancelled[k]; ok {
			o.Message = "not deleted: request " + k + " was cancelled by " + by + " before a call carried it"
		} else if by, ok := byID[id]; ok {
			o.Message = "not deleted: cancelled by " + by + " (by ID) before a call carried it"
		} else {
			keep = append(keep, id)
			continue
		}
		if _, ok := byID[id]; ok {
			marked = append(marked, id)
		}
		outs = append(outs, o)
	}
	if len(outs) == 0 {
		return nil
	}
	if err := h.write(ctx, b, outs); err != nil {
		return err
	}
	if len(marked) > 0 {
		// Settled for this batch before the mark is spent: a later
		// execution (after a wait) must not send them.
		if err := h.ledger.NoteDone(ctx, b.a.taskID, marked); err != nil {
			return err
		}
		b.call.Done = append(b.call.Done, marked...)
		if err := h.ledger.ClearCancelIDs(ctx, b.p.Kind, marked); err != nil {
			return err
		}
	}
	b.log.Info("cancelled before the call", "ids", len(outs))
	b.ids = keep
	return nil
}

// releaseCanary gives up the turn to test the credentials when the batch
// holding it ends its execution without having resumed the fleet.
func (h *Handler) releaseCanary(ctx context.Context, b *batch) {
	if !b.canary || h.cfg.Pause == nil {
		return
	}
	if err := h.cfg.Pause.ReleaseCanary(context.WithoutCancel(ctx), b.a.taskID); err != nil {
		b.log.Warn("could not give up the credentials test turn; it expires by itself", "err", err)
	}
}

// gather collects the facts, making the V1 delete call when one is due;
// on V2 it runs the batch's calls itself (processV2). A nil Facts with a nil
// error means the batch ended while gathering.
func (h *Handler) gather(ctx context.Context, b *batch) (*Facts, error) {
	f, err := h.precheck(ctx, b)
	if err != nil || f == nil {
		return nil, err
	}
	if f.Call.State == ledger.CallInDoubt || f.Held || f.Paused || f.Called {
		return f, nil
	}
	if b.api == fleet.V2 {
		return nil, h.processV2(ctx, b, f.Call)
	}
	return h.callV1(ctx, b, f)
}

// precheck reads what decides whether a call is due at all: the batch's call
// record (and, in doubt, whether a listing answers), a listing's hold, the
// fleet's pause, and for a rule's batch the services using its IDs.
func (h *Handler) precheck(ctx context.Context, b *batch) (*Facts, error) {
	f := &Facts{N: len(b.ids), Retried: b.a.retried, MaxRetry: b.a.maxRetry, Auto: h.auto(b), Call: b.call,
		Again: b.p.Split == "again", Unsure: b.p.Unsure}
	call := b.call
	var err error
	if call.State == ledger.CallInDoubt {
		_, _, err := h.inv.Check(ctx, b.p.Kind, b.ids, call.LostSeq)
		switch {
		case errors.Is(err, inventory.ErrNoSnapshot):
			if call.Probe == ledger.ProbeByName {
				if err := h.probe(ctx, b, f); err != nil {
					return nil, err
				}
			}
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
	// The asker's name scope binds even with delete_in_use.
	if err := h.scope(ctx, b); err != nil {
		return nil, err
	}
	if len(b.ids) == 0 {
		return nil, h.end(ctx, b)
	}
	f.N = len(b.ids)
	if !b.p.DeleteInUse {
		if err := h.guard(ctx, b); err != nil {
			if qianfan.Classify(err) != qianfan.ClassUnknown {
				// A listing refused for credentials pauses the fleet, a
				// quota waits: as a delete call's answer would.
				f.Called, f.Err = true, err
				b.answer, _ = errors.AsType[*qianfan.Error](err)
				return f, nil
			}
			return nil, err
		}
		if len(b.ids) == 0 {
			return nil, h.end(ctx, b)
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
	if call.State == "" && b.p.Split != "recheck" {
		if err := h.notePresent(ctx, b); err != nil {
			if qianfan.Classify(err) == qianfan.ClassUnknown {
				return nil, err
			}
			// The read's answer decides as a delete call's would: a refused
			// credential pauses the fleet, a quota waits, a gone V1
			// switches; none of them spends a retry without a word.
			f.Called, f.Err = true, err
			b.answer, _ = errors.AsType[*qianfan.Error](err)
			return f, nil
		}
	}
	if len(b.ids) == 1 {
		f.Evident = slices.Contains(b.call.Present, b.ids[0]) || slices.Contains(b.call.Seen, b.ids[0])
	}
	if f.Unsure && b.p.LostIn != "" {
		if f.Through, err = h.ledger.Through(ctx, b.p.LostIn); err != nil {
			return nil, err
		}
	}
	if f.Call, err = h.ledger.BeginCall(ctx, b.a.taskID); err != nil {
		return nil, err
	}
	if f.Call.Doubted() && !call.Doubted() {
		b.log.Warn("an earlier execution died during its call: its answer is lost")
	}
	b.start = h.now()
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
	h.obs.Call(b.p.Kind, b.ids[0].Type(), callOutcome(err), len(b.ids), h.now().Sub(b.start))
	return f, nil
}

// paused reports whether the fleet's deletions are paused for this batch:
// while the credentials are being tested, one batch gets the call.
func (h *Handler) paused(ctx context.Context, b *batch) (bool, error) {
	if h.cfg.Pause == nil {
		return false, nil
	}
	st, err := h.cfg.Pause.Status(ctx)
	if err != nil || st.State == fleet.Running {
		return false, err
	}
	if st.State == fleet.Probing {
		got, err := h.cfg.Pause.Canary(ctx, b.a.taskID, 2*time.Minute)
		if err != nil || got {
			b.canary = got
			return false, err
		}
	}
	return true, nil
}

// guard drops from the batch the IDs in use (a custom service of either
// protocol version, in any status, or an unfinished batch inference
// task), recording them protected and naming what uses them; the rest of
// the batch goes on. When the view cannot tell, nothing is sent: the batch
// waits without spending a retry. An int ID whose string form no listing
// has shown waits for a listing that shows it (or proves it absent).
func (h *Handler) guard(ctx context.Context, b *batch) error {
	if h.cfg.Guard == nil {
		h.obs.Retry(b.p.Kind, "in-use")
		return &ThrottleError{Wait: h.cfg.PausePoll, Err: errors.New("no in-use check configured; not deleting unchecked")}
	}
	rs, err := h.cfg.Guard.Check(ctx, b.p.Kind, b.ids)
	if errors.Is(err, inuse.ErrCannotTell) {
		if c := qianfan.Classify(err); c == qianfan.ClassRequest || c == qianfan.ClassThrottled {
			return err
		}
		h.obs.Retry(b.p.Kind, "in-use")
		b.log.Warn("cannot tell what is in use; the batch waits", "err", err)
		return &ThrottleError{Wait: h.cfg.VerifyPoll, Err: fmt.Errorf("not deleting: %w", err)}
	}
	if err != nil {
		return err
	}
	var outs []ledger.Outcome
	var unplaced []modelid.ID
	keep := b.ids[:0:0]
	for _, r := range rs {
		switch r.State {
		case inuse.Free:
			keep = append(keep, r.ID)
		case inuse.InUse:
			o := h.outcome(b, r.ID, ledger.StateProtected, nil)
			o.Message = "not deleted: in use by " + strings.Join(r.Users, ", ") + " (checked right before the call; delete_in_use overrides)"
			outs = append(outs, o)
			b.res.Protected = append(b.res.Protected, r.ID)
		default:
			unplaced = append(unplaced, r.ID)
		}
	}
	if len(unplaced) > 0 {
		free, err := h.placeUnknown(ctx, b, unplaced, rs)
		if err != nil {
			return err
		}
		keep = append(keep, free...)
	}
	if len(outs) > 0 {
		if err := h.write(ctx, b, outs); err != nil {
			return err
		}
		b.log.Warn("not deleted: in use", "ids", idStrings(b.res.Protected), "by", outs[0].Message)
	}
	b.ids = keep
	return nil
}

// placeUnknown decides the IDs the view could not place (an int ID whose
// string form no listing has shown). The batch first asks for a listing
// of the account, which teaches every existing int ID's string form, and
// waits for it without spending a retry. Once a listing taken after that
// ask is saved: an ID it shows absent does not exist, so nothing runs it
// (its call will say so); an ID it still cannot place is not deleted
// (protected, naming why: nothing is deleted on doubt).
func (h *Handler) placeUnknown(ctx context.Context, b *batch, ids []modelid.ID, rs []inuse.Result) ([]modelid.ID, error) {
	reasons := map[modelid.ID]string{}
	for _, r := range rs {
		reasons[r.ID] = r.Reason
	}
	want := inventory.UrgentPrefix + b.a.taskID
	at := max(b.call.Asked, b.p.Asked)
	asked := at > 0
	if !asked {
		var err error
		if at, err = h.inv.Stamp(ctx); err != nil {
			return nil, err
		}
		if err := h.ledger.NoteAsked(ctx, b.a.taskID, at); err != nil {
			return nil, err
		}
	}
	pres, _, err := h.inv.Check(ctx, b.p.Kind, ids, at)
	if errors.Is(err, inventory.ErrNoSnapshot) || !asked {
		// (Again) ask for a listing stamped after at.
		if err := h.inv.Want(ctx, want, b.p.Kind, ids, at, h.now()); err != nil {
			return nil, err
		}
		h.obs.Retry(b.p.Kind, "in-use")
		b.log.Info("waiting for a listing before the in-use check can tell", "ids", len(ids), "reason", reasons[ids[0]])
		return nil, &ThrottleError{Wait: h.cfg.VerifyPoll, Err: fmt.Errorf("not deleting %s yet: %s; waiting for a listing", ids[0], reasons[ids[0]])}
	}
	if err != nil {
		return nil, err
	}
	if err := h.inv.Settled(ctx, want, b.p.Kind); err != nil {
		return nil, err
	}
	b.p.Asked = at // batches split from this one need not ask again
	// The listing taught the string forms of the IDs it shows: ask again.
	again, err := h.cfg.Guard.Check(ctx, b.p.Kind, ids)
	if err != nil {
		return nil, err
	}
	var free, retry []modelid.ID
	var outs []ledger.Outcome
	v2, err := h.effective(ctx)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		r := again[i]
		if r.State == inuse.Unknown && pres[i] == inventory.Undecided && v2 != fleet.V2 && id.Type() == modelid.IDInt && b.p.Kind == modelid.KindModel {
			// That listing could not decide int models (its V1 walk moved
			// under deletions): ask for another.
			retry = append(retry, id)
			continue
		}
		switch {
		case r.State == inuse.Free, r.State == inuse.Unknown && pres[i] == inventory.Absent:
			free = append(free, id)
			continue
		case r.State == inuse.InUse:
			o := h.outcome(b, id, ledger.StateProtected, nil)
			o.Message = "not deleted: in use by " + strings.Join(r.Users, ", ") + " (checked right before the call; delete_in_use overrides)"
			outs = append(outs, o)
			b.res.Protected = append(b.res.Protected, id)
			continue
		}
		o := h.outcome(b, id, ledger.StateProtected, nil)
		o.Message = "not deleted: cannot tell whether it is in use (" + reasons[id] + "); enqueue its " + stringForm(b.p.Kind) +
			" form, or say delete_in_use"
		outs = append(outs, o)
		b.res.Protected = append(b.res.Protected, id)
	}
	if len(outs) > 0 {
		if err := h.write(ctx, b, outs); err != nil {
			return nil, err
		}
		b.log.Warn("not deleted: cannot tell whether in use", "ids", len(outs), "reason", outs[0].Message)
	}
	if len(retry) > 0 {
		seq, err := h.inv.Stamp(ctx)
		if err != nil {
			return nil, err
		}
		if err := h.ledger.NoteAsked(ctx, b.a.taskID, seq); err != nil {
			return nil, err
		}
		if err := h.inv.Want(ctx, want, b.p.Kind, retry, seq, h.now()); err != nil {
			return nil, err
		}
		h.obs.Retry(b.p.Kind, "in-use")
		return nil, &ThrottleError{Wait: h.cfg.VerifyPoll, Err: fmt.Errorf("not deleting %s yet: the last listing could not decide int IDs; waiting for another", retry[0])}
	}
	return free, nil
}

// detailMax is the largest batch that gets a detail call per ID before
// its first call; larger batches take their evidence from the last
// listing only.
const detailMax = 2

// notePresent records, before a batch's first call, which of its IDs
// Qianfan shows to exist: if the call's answer is lost and a listing then
// shows them absent, this tells "the call deleted it" from "it never
// existed". The last listing answers for every batch without a call; a
// batch of detailMax IDs or fewer asks a detail call for the rest. It
// also notes the string forms the answers name, for goneAsOther.
func (h *Handler) notePresent(ctx context.Context, b *batch) error {
	var present, seen, absent []modelid.ID
	known, _, err := h.inv.Check(ctx, b.p.Kind, b.ids, 0)
	if err != nil && !errors.Is(err, inventory.ErrNoSnapshot) {
		return err
	}
	for i, id := range b.ids {
		if known != nil && known[i] == inventory.Present {
			present = append(present, id)
			continue
		}
		if len(b.ids) > detailMax {
			continue
		}
		start := h.now()
		found, other, err := h.del.Describe(ctx, b.p.Kind, id)
		h.obs.Call(b.p.Kind, id.Type(), describeOutcome(found, err), 1, h.now().Sub(start))
		if err != nil {
			return err
		}
		if !found {
			absent = append(absent, id)
		}
		if found {
			seen = append(seen, id)
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
	if len(absent) > 0 {
		if err := h.ledger.NoteAbsent(ctx, b.a.taskID, absent); err != nil {
			return err
		}
	}
	if len(seen) > 0 {
		b.call.Seen = append(b.call.Seen, seen...)
		if err := h.ledger.NoteSeen(ctx, b.a.taskID, seen); err != nil {
			return err
		}
	}
	if len(present) == 0 {
		return nil
	}
	names, err := h.names(ctx, b, present)
	if err != nil {
		return err
	}
	b.call.Present = append(b.call.Present, present...)
	return h.ledger.NotePresent(ctx, b.a.taskID, present, names)
}

// names returns the names the listings showed for the present models of
// the batch: evidence a lost answer's reads by name need (nil without a
// Finder, or for versions, which are read through their model).
func (h *Handler) names(ctx context.Context, b *batch, present []modelid.ID) (map[modelid.ID]string, error) {
	if h.cfg.Finder == nil || b.p.Kind != modelid.KindModel {
		return nil, nil
	}
	return h.inv.V1Names(ctx, present)
}

// goneAsOther records as deleted the IDs of ids whose other form (the int
// ID of a string ID, or the reverse) the ledger holds as deleted: one
// model named by both of its IDs is deleted once, and both forms read
// deleted. It reports the IDs so recorded.
func (h *Handler) goneAsOther(ctx context.Context, b *batch, ids []modelid.ID, gone map[modelid.ID]bool) (map[modelid.ID]bool, error) {
	var ask []modelid.ID
	for _, id := range ids {
		if !gone[id] {
			ask = append(ask, id)
		}
	}
	if len(ask) == 0 {
		return nil, nil
	}
	others, err := h.inv.Other(ctx, b.p.Kind, ask)
	if err != nil || len(others) == 0 {
		return nil, err
	}
	var forms []modelid.ID
	for _, o := range others {
		forms = append(forms, o)
	}
	recs, err := h.ledger.LookupMany(ctx, b.p.Kind, forms)
	if err != nil {
		return nil, err
	}
	byForm := map[modelid.ID]ledger.Record{}
	for _, r := range recs {
		if r.State == ledger.StateDeleted {
			byForm[r.ID] = r
		}
	}
	var outs []ledger.Outcome
	for _, id := range ask {
		r, ok := byForm[others[id]]
		if !ok {
			continue
		}
		o := h.outcome(b, id, ledger.StateDeleted, nil)
		o.LogID, o.API, o.Verified = r.LogID, r.API, r.Verified
		o.Message = "deleted as " + r.ID.String() + ", its other ID form"
		if r.TaskID != "" {
			o.Message += ", by task " + r.TaskID
		}
		outs = append(outs, o)
	}
	if len(outs) == 0 {
		return nil, nil
	}
	written, err := h.ledger.Write(ctx, outs)
	if err != nil {
		return nil, err
	}
	traceOutcomes(ctx, written)
	out := map[modelid.ID]bool{}
	for _, o := range written {
		out[o.ID] = true
		b.res.AlreadyDeleted = append(b.res.AlreadyDeleted, o.ID)
	}
	h.obs.Outcome(b.p.Kind, ids[0].Type(), ledger.StateDeleted, len(written))
	return out, nil
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
