package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/retry"
)

// Deleter makes one batchDelete call for IDs of one kind and one type.
type Deleter interface {
	BatchDelete(ctx context.Context, k modelid.Kind, ids []modelid.ID) (qianfan.Result, error)
}

// Enqueuer is the part of *asynq.Client the handler needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Observer is told what the handler does, for metrics. All methods must be
// safe for concurrent use.
type Observer interface {
	// Call reports one API call: its outcome ("ok" or the error class and
	// code), how many IDs it carried and how long it took.
	Call(k modelid.Kind, t modelid.IDType, outcome string, ids int, d time.Duration)
	// Outcome reports IDs reaching an end state (StateDeleted, ...).
	Outcome(k modelid.Kind, t modelid.IDType, state ledger.State, ids int)
	// Split reports a batch split; why is "bisect", "isolate" (one batch
	// per ID, after a lost answer) or "oversize".
	Split(k modelid.Kind, why string)
	// Retry reports a batch handed back to Asynq; why is "transient",
	// "throttled" or "unknown".
	Retry(k modelid.Kind, why string)
}

type nopObserver struct{}

func (nopObserver) Call(modelid.Kind, modelid.IDType, string, int, time.Duration) {}
func (nopObserver) Outcome(modelid.Kind, modelid.IDType, ledger.State, int)       {}
func (nopObserver) Split(modelid.Kind, string)                                    {}
func (nopObserver) Retry(modelid.Kind, string)                                    {}

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// BatchSize is the most IDs sent in one call. Defaults to DefaultBatchSize.
	BatchSize int
	// Options are given to the batches the handler enqueues.
	Options Options
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer defaults to one that ignores everything.
	Observer Observer
	// VerdictDeferrals is how many times a single ID that answered 500001
	// after a lost answer waits VerdictWait for sibling batches before it is
	// presumed deleted. Defaults to 2 and 10s.
	VerdictDeferrals int
	VerdictWait      time.Duration
}

// Handler processes TypeDelete and TypeDeleteBatch tasks. Each execution
// makes at most one API call, so an Asynq retry repeats exactly one call.
//
// Qianfan answers "500001 param invalid" for a whole list when one ID in it
// is bad, and most likely for an ID that is already gone. So:
//   - IDs the ledger knows as deleted are never sent again;
//   - a rejected batch of several IDs is bisected into two new batches, so
//     every good ID is still deleted and only bad ones end up dead;
//   - a rejected single ID is dead-lettered, unless an earlier call that
//     covered it lost its answer and nothing since has shown that call
//     failed: then that call most likely deleted it, and it is recorded as
//     presumed deleted instead.
type Handler struct {
	del    Deleter
	q      Enqueuer
	ledger *ledger.Ledger
	cfg    HandlerConfig
	log    *slog.Logger
	obs    Observer
}

// NewHandler returns a Handler.
func NewHandler(del Deleter, q Enqueuer, ledger *ledger.Ledger, cfg HandlerConfig) *Handler {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.VerdictDeferrals == 0 {
		cfg.VerdictDeferrals = 2
	}
	if cfg.VerdictWait == 0 {
		cfg.VerdictWait = 10 * time.Second
	}
	h := &Handler{del: del, q: q, ledger: ledger, cfg: cfg, log: cfg.Logger, obs: cfg.Observer}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.obs == nil {
		h.obs = nopObserver{}
	}
	return h
}

// Action is what the queue does with a batch after its call.
type Action int

// The actions Decide chooses from.
const (
	ActComplete   Action = iota + 1 // deleted: record and finish
	ActRetry                        // hand back to Asynq; uses up a retry
	ActThrottle                     // hand back to Asynq; does not use up a retry
	ActBisect                       // split in two and enqueue the halves
	ActDeadLetter                   // dead-letter every ID of the batch
)

func (a Action) String() string {
	switch a {
	case ActComplete:
		return "complete"
	case ActRetry:
		return "retry"
	case ActThrottle:
		return "throttle"
	case ActBisect:
		return "bisect"
	case ActDeadLetter:
		return "dead-letter"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Decide maps a call's outcome on a batch of n IDs to what the queue does.
// Unknown error codes are retried a bounded number of times, then
// dead-lettered with their code: safer than guessing either way.
func Decide(err error, n int) Action {
	if err == nil {
		return ActComplete
	}
	switch qianfan.Classify(err) {
	case qianfan.ClassThrottled:
		return ActThrottle
	case qianfan.ClassInvalidIDs:
		if n > 1 {
			return ActBisect
		}
		return ActDeadLetter
	case qianfan.ClassRequest:
		return ActDeadLetter
	default: // transient, unknown, context
		return ActRetry
	}
}

// ThrottleError hands a throttled batch back to Asynq without using up a
// retry; RetryDelay waits Wait.
type ThrottleError struct {
	Wait time.Duration
	Err  error
}

func (e *ThrottleError) Error() string { return "throttled: " + e.Err.Error() }
func (e *ThrottleError) Unwrap() error { return e.Err }

// deadError archives a task at once. Its text is only the reason, e.g.
// "500001 param invalid (log_id 2443985832)", which is what asynqmon and the
// asynq CLI show as the archived task's error.
type deadError struct{ reason string }

func (e deadError) Error() string { return e.reason }
func (e deadError) Unwrap() error { return asynq.SkipRetry }

// IsFailure tells Asynq which errors use up a retry: all but throttling.
func IsFailure(err error) bool {
	var te *ThrottleError
	return !errors.As(err, &te)
}

// RetryDelay is the Asynq RetryDelayFunc: retry.Tasks (5 s doubling to a
// 10 minute cap, ±20%); throttled batches wait what the error says, ±20%.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if te, ok := errors.AsType[*ThrottleError](err); ok && te.Wait > 0 {
		return retry.Policy{Initial: te.Wait, Max: te.Wait, Jitter: retry.Tasks().Jitter}.Delay(0)
	}
	return retry.Tasks().Delay(n)
}

// throttleWait is how long a throttled batch waits in the queue. The client
// already backed off inside the call, so the queue waits longer.
func throttleWait(err error) time.Duration {
	var qe *qianfan.Error
	if errors.As(err, &qe) {
		if qe.RetryAfter > 0 {
			return max(qe.RetryAfter, time.Second)
		}
		if qe.Code == 17 { // daily limit: nothing will pass for a long while
			return time.Hour
		}
	}
	return 30 * time.Second
}

// batchResult is written as the task's result: asynqmon's completed tab is
// the audit trail.
type batchResult struct {
	Kind           modelid.Kind `json:"kind"`
	Deleted        []modelid.ID `json:"deleted,omitempty"`
	AlreadyDeleted []modelid.ID `json:"already_deleted,omitempty"`
	Presumed       []modelid.ID `json:"presumed_deleted,omitempty"`
	Dead           []modelid.ID `json:"dead,omitempty"`
	SplitInto      []string     `json:"split_into,omitempty"`
	Reason         string       `json:"reason,omitempty"`
	LogID          string       `json:"log_id,omitempty"`
	Attempts       int          `json:"attempts,omitempty"`
	At             string       `json:"at"`
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

func (h *Handler) process(ctx context.Context, t *asynq.Task, a attempt) error {
	taskID := a.taskID
	p, err := DecodePayload(t.Payload())
	if err != nil {
		return h.unreadable(ctx, taskID, string(t.Payload()), err)
	}
	if len(p.Rejected) > 0 {
		for _, raw := range p.Rejected {
			if err := h.unreadable(ctx, taskID, raw, errors.New("a job in this group could not be read")); err != nil && !errors.Is(err, asynq.SkipRetry) {
				return err
			}
		}
		if len(p.IDs) == 0 {
			return nil
		}
	}
	ids := modelid.Dedupe(p.IDs)
	ints, strs := modelid.SplitByType(ids)
	if len(ids) > h.cfg.BatchSize || (len(ints) > 0 && len(strs) > 0) {
		return h.fanOut(ctx, t, taskID, p, ints, strs)
	}
	gone, err := h.ledger.Gone(ctx, p.Kind, ids)
	if err != nil {
		return err
	}
	res := batchResult{Kind: p.Kind}
	pending := ids[:0:0]
	for _, id := range ids {
		if gone[id] {
			res.AlreadyDeleted = append(res.AlreadyDeleted, id)
		} else {
			pending = append(pending, id)
		}
	}
	if len(pending) == 0 {
		return h.finish(t, res)
	}
	return h.call(ctx, t, a, p, pending, res)
}

func (h *Handler) call(ctx context.Context, t *asynq.Task, a attempt, p Payload, ids []modelid.ID, res batchResult) (ret error) {
	taskID := a.taskID
	idType := ids[0].Type()
	log := h.log.With("task_id", taskID, "kind", p.Kind, "id_type", idType, "batch_size", len(ids))
	if a.retried > 0 {
		log = log.With("retry", a.retried)
	}
	var (
		out     qianfan.Result
		err     error
		elapsed time.Duration
	)
	if pend, perr := h.ledger.PendingVerdict(ctx, taskID); perr != nil {
		return perr
	} else if pend != nil && len(ids) == 1 {
		// Already answered 500001; only the verdict was deferred. Calling
		// again would only repeat that answer.
		err = pend
	} else {
		// Write ahead: if this process dies during the call, the next
		// execution finds the mark and knows the call may have been applied.
		if err := h.ledger.BeginCall(ctx, taskID); err != nil {
			return err
		}
		start := time.Now()
		out, err = h.del.BatchDelete(ctx, p.Kind, ids)
		elapsed = time.Since(start)
	}
	if ctx.Err() != nil {
		// Shutting down or timed out: Asynq requeues or retries the batch,
		// and the write-ahead mark stays, since the call may have gone through.
		return ctx.Err()
	}
	// Clear the write-ahead mark once the answer has been acted on: a
	// recorded outcome, a wait, or the API's own error handed back for a
	// retry. If recording failed, the mark stays, so the retry knows the
	// call may have been applied.
	apiErr := err
	defer func() {
		var te *ThrottleError
		var de deadError
		if ret == nil || ret == apiErr || errors.As(ret, &te) || errors.As(ret, &de) {
			h.ledger.EndCall(context.WithoutCancel(ctx), taskID)
		}
	}()
	var qe *qianfan.Error
	errors.As(err, &qe)
	ambiguous := out.Ambiguous || (qe != nil && qe.Ambiguous)
	if ambiguous {
		if err := h.ledger.MarkUncertain(ctx, taskID); err != nil {
			return err
		}
	}
	logID, attempts := out.LogID, out.Attempts
	if qe != nil {
		logID, attempts = qe.LogID, qe.Attempts
	}
	res.LogID, res.Attempts = logID, attempts
	if logID != "" {
		log = log.With("log_id", logID)
	}
	act := Decide(err, len(ids))
	if elapsed > 0 {
		h.obs.Call(p.Kind, idType, callOutcome(err), len(ids), elapsed)
	}

	switch act {
	case ActComplete:
		now := time.Now()
		outs := make([]ledger.Outcome, len(ids))
		for i, id := range ids {
			outs[i] = ledger.Outcome{Kind: p.Kind, ID: id, State: ledger.StateDeleted, LogID: logID, TaskID: taskID, Attempts: attempts, At: now}
		}
		if _, err := h.ledger.Write(ctx, outs); err != nil {
			return err
		}
		// This call deleted IDs that earlier lost-answer calls also covered,
		// so those calls deleted nothing.
		if err := h.ledger.Refute(ctx, p.Uncertain); err != nil {
			return err
		}
		if err := h.ledger.Clear(ctx, p.Suspect, ids); err != nil {
			return err
		}
		h.obs.Outcome(p.Kind, idType, ledger.StateDeleted, len(ids))
		log.Info("batch deleted", "attempts", attempts, "ambiguous", ambiguous)
		res.Deleted = ids
		return h.finish(t, res)

	case ActThrottle:
		h.obs.Retry(p.Kind, "throttled")
		log.Warn("batch throttled", "err", err)
		return &ThrottleError{Wait: throttleWait(err), Err: err}

	case ActRetry:
		why := "transient"
		if qianfan.Classify(err) == qianfan.ClassUnknown {
			why = "unknown"
		}
		if a.retried >= a.maxRetry {
			log.Error("batch dead-lettered: retries used up", "err", err, "retried", a.retried)
			return h.deadLetter(ctx, taskID, p.Kind, ids, qe, err, a.retried+1)
		}
		h.obs.Retry(p.Kind, why)
		log.Warn("batch failed, Asynq will retry", "err", err, "class", qianfan.Classify(err))
		return err

	case ActBisect:
		uncertain, err2 := h.uncertainLineage(ctx, taskID, p.Uncertain, ambiguous)
		if err2 != nil {
			return err2
		}
		res.Reason = err.Error()
		lineage := p
		lineage.Uncertain = uncertain
		chunks, why := [][]modelid.ID{ids[:len(ids)/2], ids[len(ids)/2:]}, "bisect"
		if len(uncertain) > 0 {
			// Most likely the lost-answer call deleted the whole batch, and
			// then every ID answers 500001 however it is split: only one call
			// per ID can show it, so go straight there (n calls, not 2n-1).
			chunks, why = modelid.Chunk(ids, 1), "isolate"
		} else {
			// A rejection with no doubt about earlier calls: one of these
			// IDs was bad at this moment. Once all but one are deleted, the
			// last one is that bad ID, whatever happens to its own calls.
			lineage.Suspect, lineage.SuspectSize = taskID, len(ids)
		}
		children, err2 := h.enqueueChildren(ctx, taskID, lineage, chunks, why)
		if err2 != nil {
			return err2
		}
		h.obs.Split(p.Kind, why)
		log.Warn("batch rejected, splitting", "err", err, "how", why, "children", len(children), "uncertain_calls", uncertain)
		res.SplitInto = children
		return h.finish(t, res)
	}

	// ActDeadLetter.
	if qianfan.Classify(err) == qianfan.ClassInvalidIDs {
		// One ID: maybe gone already by another batch, or by a lost-answer call.
		gone, err2 := h.ledger.Gone(ctx, p.Kind, ids)
		if err2 != nil {
			return err2
		}
		if gone[ids[0]] {
			res.AlreadyDeleted = ids
			return h.finish(t, res)
		}
		uncertain, err2 := h.uncertainLineage(ctx, taskID, p.Uncertain, ambiguous)
		if err2 != nil {
			return err2
		}
		if len(uncertain) > 0 && p.Suspect != "" {
			// The rest of the batch that was rejected without doubt has
			// been deleted: this ID was the bad one before any lost answer.
			n, err2 := h.ledger.Cleared(ctx, p.Suspect)
			if err2 != nil {
				return err2
			}
			if n >= p.SuspectSize-1 {
				log.Info("ID is the bad one of its batch; the lost answer did not delete it", "id", ids[0].String(), "batch", p.Suspect)
				uncertain = nil
			}
		}
		if len(uncertain) > 0 {
			// A sibling batch may yet show the lost-answer call failed:
			// wait for it a little before deciding.
			n, err2 := h.ledger.DeferVerdict(ctx, taskID, qe)
			if err2 != nil {
				return err2
			}
			if n <= h.cfg.VerdictDeferrals {
				h.obs.Retry(p.Kind, "verdict")
				log.Info("ID answered param invalid after a lost answer; waiting for sibling batches", "id", ids[0].String(), "deferral", n)
				return &ThrottleError{Wait: h.cfg.VerdictWait, Err: fmt.Errorf("deciding whether %s was deleted by an earlier call: %w", ids[0], err)}
			}
			msg := "presumed deleted by an earlier call whose answer was lost; a repeat call answered " + err.Error()
			o := ledger.Outcome{Kind: p.Kind, ID: ids[0], State: ledger.StatePresumed, LogID: logID, Message: msg, TaskID: taskID, Attempts: attempts}
			if qe != nil {
				o.Code = qe.Code
			}
			if _, err := h.ledger.Write(ctx, []ledger.Outcome{o}); err != nil {
				return err
			}
			h.obs.Outcome(p.Kind, idType, ledger.StatePresumed, 1)
			log.Warn("ID presumed deleted", "id", ids[0].String(), "uncertain_calls", uncertain)
			res.Presumed, res.Reason = ids, msg
			return h.finish(t, res)
		}
	} else {
		log.Error("batch rejected for the whole request: check credentials and permissions", "err", err)
	}
	return h.deadLetter(ctx, taskID, p.Kind, ids, qe, err, a.retried+1)
}

// uncertainLineage returns the lost-answer calls (this task's own, and its
// ancestors') that nothing has yet shown to have failed.
func (h *Handler) uncertainLineage(ctx context.Context, taskID string, lineage []string, ambiguousNow bool) ([]string, error) {
	self := ambiguousNow
	if !self {
		var err error
		if self, err = h.ledger.Uncertain(ctx, taskID); err != nil {
			return nil, err
		}
	}
	all := lineage
	if self {
		all = append(append([]string(nil), lineage...), taskID)
	}
	return h.ledger.Unrefuted(ctx, all)
}

// deadLetter records every ID as dead and archives the task with the reason.
func (h *Handler) deadLetter(ctx context.Context, taskID string, k modelid.Kind, ids []modelid.ID, qe *qianfan.Error, err error, attempts int) error {
	now := time.Now()
	outs := make([]ledger.Outcome, len(ids))
	for i, id := range ids {
		o := ledger.Outcome{Kind: k, ID: id, State: ledger.StateDead, Message: err.Error(), TaskID: taskID, Attempts: attempts, At: now}
		if qe != nil {
			o.Code, o.Message, o.LogID = qe.Code, qe.Message, qe.LogID
			if o.Code == 0 && qe.HTTPStatus != 0 {
				o.Code = qe.HTTPStatus
			}
			if o.Message == "" {
				o.Message = err.Error()
			}
		}
		outs[i] = o
	}
	written, werr := h.ledger.Write(ctx, outs)
	if werr != nil {
		return werr // retried; the dead letters are written next time
	}
	if len(written) > 0 {
		h.obs.Outcome(k, ids[0].Type(), ledger.StateDead, len(written))
	}
	return deadError{err.Error()}
}

// unreadable dead-letters a payload nobody can act on, keeping its text.
func (h *Handler) unreadable(ctx context.Context, taskID, raw string, cause error) error {
	if len(raw) > 512 {
		raw = raw[:512] + "…"
	}
	h.log.Error("unreadable task payload dead-lettered", "task_id", taskID, "err", cause)
	o := ledger.Outcome{Kind: "", ID: modelid.StringID("unreadable"), State: ledger.StateDead, Message: cause.Error() + ": " + raw, TaskID: taskID, Attempts: 1}
	if _, err := h.ledger.Write(ctx, []ledger.Outcome{o}); err != nil {
		return err
	}
	return deadError{cause.Error()}
}

// fanOut splits a batch that is too big or mixes ID types into ready
// batches, without calling the API.
func (h *Handler) fanOut(ctx context.Context, t *asynq.Task, taskID string, p Payload, ints, strs []modelid.ID) error {
	chunks := append(modelid.Chunk(ints, h.cfg.BatchSize), modelid.Chunk(strs, h.cfg.BatchSize)...)
	children, err := h.enqueueChildren(ctx, taskID, p, chunks, "oversize")
	if err != nil {
		return err
	}
	h.obs.Split(p.Kind, "oversize")
	h.log.Info("batch split before calling", "task_id", taskID, "kind", p.Kind, "ids", len(ints)+len(strs), "batches", len(children))
	return h.finish(t, batchResult{Kind: p.Kind, SplitInto: children, Reason: "over the batch size or mixed ID types"})
}

// enqueueChildren enqueues chunks as batches whose task IDs derive from the
// parent's, so a parent delivered twice enqueues each child once.
// lineage carries what the children must know of their ancestors (Kind,
// Uncertain, Suspect, SuspectSize).
func (h *Handler) enqueueChildren(ctx context.Context, parent string, lineage Payload, chunks [][]modelid.ID, why string) ([]string, error) {
	var ids []string
	for i, c := range chunks {
		id := parent + "/" + strconv.Itoa(i)
		task, err := NewBatchTask(Payload{Kind: lineage.Kind, IDs: c, Uncertain: lineage.Uncertain,
			Suspect: lineage.Suspect, SuspectSize: lineage.SuspectSize, Parent: parent, Split: why}, h.cfg.Options)
		if err != nil {
			return nil, err
		}
		if _, err := h.q.EnqueueContext(ctx, task, asynq.TaskID(id)); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return nil, fmt.Errorf("enqueue split batch %s: %w", id, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (h *Handler) finish(t *asynq.Task, res batchResult) error {
	res.At = time.Now().UTC().Format(time.RFC3339)
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if w := t.ResultWriter(); w != nil {
		if _, err := w.Write(b); err != nil {
			h.log.Warn("could not write task result", "err", err)
		}
	}
	return nil
}

func callOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	var qe *qianfan.Error
	if errors.As(err, &qe) {
		switch {
		case qe.Code != 0:
			return strconv.Itoa(qe.Code)
		case qe.HTTPStatus != 0:
			return "http_" + strconv.Itoa(qe.HTTPStatus)
		}
	}
	return qianfan.Classify(err).String()
}
