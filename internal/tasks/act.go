package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/apimode"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Result is what a batch task writes as its Asynq result: asynqmon's
// completed tab is the audit trail, and monitor.FormatResult renders it.
type Result struct {
	Kind           modelid.Kind `json:"kind"`
	Deleted        []modelid.ID `json:"deleted,omitempty"`
	Verified       []modelid.ID `json:"verified_deleted,omitempty"`
	AlreadyDeleted []modelid.ID `json:"already_deleted,omitempty"`
	Presumed       []modelid.ID `json:"presumed_deleted,omitempty"`
	Dead           []modelid.ID `json:"dead,omitempty"`
	Protected      []modelid.ID `json:"protected,omitempty"`
	SplitInto      []string     `json:"split_into,omitempty"`
	Reason         string       `json:"reason,omitempty"`
	LogID          string       `json:"log_id,omitempty"`
	Attempts       int          `json:"attempts,omitempty"`
	At             string       `json:"at"`
}

// act applies the decision for f.
func (h *Handler) act(ctx context.Context, b *batch, f Facts) error {
	a := Decide(f)
	if b.canary && f.Called && a != ActPause {
		// Qianfan took the call (whatever it said of the IDs): the
		// credentials work again.
		if err := h.resume(ctx); err != nil {
			return err
		}
		b.canary = false
	}
	switch a {
	case ActDelete:
		return h.deleted(ctx, b, f)
	case ActRetry:
		return h.retry(ctx, b, f)
	case ActThrottle:
		return h.throttle(ctx, b, f)
	case ActBisect:
		return h.bisect(ctx, b)
	case ActDeadLetter:
		return h.deadLetter(ctx, b, f.Err, b.ids)
	case ActVerify:
		return h.verify(ctx, b, f)
	case ActWait:
		h.obs.Retry(b.p.Kind, "verify")
		return &ThrottleError{Wait: h.cfg.VerifyPoll, Err: errors.New("waiting for a listing to tell whether a lost call deleted these IDs")}
	case ActSettle:
		return h.settle(ctx, b, f)
	case ActHold:
		h.obs.Retry(b.p.Kind, "hold")
		return &ThrottleError{Wait: 2 * time.Second, Err: errors.New("a listing is under way and asks for no deletions meanwhile")}
	case ActPause:
		return h.pause(ctx, b, f)
	case ActSwitch:
		return h.switchToV2(ctx, b, f)
	case ActPaused:
		h.obs.Retry(b.p.Kind, "paused")
		return &ThrottleError{Wait: h.cfg.PausePoll, Err: errors.New("deletions are paused for the whole fleet (see qfpurge pause status)")}
	default:
		return fmt.Errorf("no action for %v", a)
	}
}

// deleted records a successful call.
func (h *Handler) deleted(ctx context.Context, b *batch, f Facts) error {
	now := time.Now()
	outs := make([]ledger.Outcome, len(b.ids))
	for i, id := range b.ids {
		outs[i] = ledger.Outcome{Kind: b.p.Kind, ID: id, State: ledger.StateDeleted, LogID: b.res.LogID, TaskID: b.a.taskID,
			Attempts: b.res.Attempts, Run: b.p.Run, API: string(b.api), At: now}
	}
	if err := h.write(ctx, b, outs); err != nil {
		return err
	}
	b.log.Info("batch deleted", "ids", len(b.ids), "attempts", b.res.Attempts, "lost_answers_before", f.Call.Doubted())
	b.res.Deleted = b.ids
	return h.end(ctx, b)
}

// resume ends a pause after the canary call went through.
func (h *Handler) resume(ctx context.Context) error {
	was, err := h.cfg.Pause.Resume(ctx)
	if err != nil || !was {
		return err
	}
	h.obs.Fleet("resumed")
	h.log.Warn("deletions resumed for the whole fleet: a call with the credentials went through")
	return h.ledger.FleetEvent(ctx, "resumed", "a delete call with the credentials went through")
}

// pause stops the fleet's deletions after a refused request; the batch
// waits, its retries unspent, nothing dead-lettered.
func (h *Handler) pause(ctx context.Context, b *batch, f Facts) error {
	if err := h.ledger.Answered(ctx, b.a.taskID, f.Lost); err != nil {
		return err
	}
	h.obs.Retry(b.p.Kind, "paused")
	if h.cfg.Pause == nil {
		b.log.Error("request refused; retrying (no fleet pause configured)", "err", f.Err)
		return &ThrottleError{Wait: h.cfg.PausePoll, Err: f.Err}
	}
	why := f.Err.Error()
	if b.answer != nil {
		if p := b.answer.Credential(); p != 0 {
			why = p.String() + " (" + b.answer.Error() + ")"
		}
	}
	first, err := h.cfg.Pause.Pause(ctx, why)
	if err != nil {
		return err
	}
	switch {
	case first:
		h.obs.Fleet("paused")
		b.log.Error("DELETIONS PAUSED for the whole fleet: Qianfan refused the request for a reason that is not the IDs'; batches stay queued with their retries unspent",
			"reason", why, "resume", "fix it; a probe resumes the fleet by itself, or: qfpurge pause lift")
		if err := h.ledger.FleetEvent(ctx, "paused", why); err != nil {
			return err
		}
	case b.canary:
		b.log.Warn("the credentials test call was refused again; deletions stay paused", "reason", why)
	default:
		b.log.Debug("request refused while the fleet is pausing", "err", f.Err)
	}
	return &ThrottleError{Wait: h.cfg.PausePoll, Err: fmt.Errorf("deletions paused: %s", why)}
}

// retry hands the batch back to Asynq, using up a retry.
func (h *Handler) retry(ctx context.Context, b *batch, f Facts) error {
	if err := h.ledger.Answered(ctx, b.a.taskID, f.Lost); err != nil {
		return err
	}
	why := "transient"
	if c := qianfan.Classify(f.Err); c != qianfan.ClassTransient {
		why = c.String()
	}
	if why == "unknown" && h.auto(b) && h.confirmGone(ctx) {
		// An answer no table knows, and V1 no longer reads either: gone.
		return h.switchToV2(ctx, b, f)
	}
	h.obs.Retry(b.p.Kind, why)
	b.log.Warn("batch failed, Asynq will retry", "err", f.Err, "class", why, "ids", len(b.ids))
	return f.Err
}

// throttle hands the batch back to Asynq later, using up no retry.
func (h *Handler) throttle(ctx context.Context, b *batch, f Facts) error {
	if err := h.ledger.Answered(ctx, b.a.taskID, f.Lost); err != nil {
		return err
	}
	h.obs.Retry(b.p.Kind, "throttled")
	b.log.Warn("batch throttled", "err", f.Err)
	return &ThrottleError{Wait: throttleWait(f.Err), Err: f.Err}
}

// bisect splits a rejected batch: one of its IDs was missing when the call
// was answered, and halving finds it in about 2·log2(n) calls.
func (h *Handler) bisect(ctx context.Context, b *batch) error {
	half := len(b.ids) / 2
	children, err := h.enqueueChildren(ctx, b.a.taskID, b.p, [][]modelid.ID{b.ids[:half], b.ids[half:]}, "bisect")
	if err != nil {
		return err
	}
	h.obs.Split(b.p.Kind, "bisect")
	b.log.Warn("batch rejected, bisecting", "reason", reason(b.answer, nil), "ids", len(b.ids))
	b.res.SplitInto, b.res.Reason = children, reason(b.answer, nil)
	return h.end(ctx, b)
}

// verify parks a batch rejected after a lost answer until a listing taken
// afterwards can tell which IDs the lost call deleted.
func (h *Handler) verify(ctx context.Context, b *batch, f Facts) error {
	code, msg, logID := 0, "", b.res.LogID
	if b.answer != nil {
		code, msg = answerCode(b.answer), b.answer.Message
	}
	if err := h.ledger.InDoubt(ctx, b.a.taskID, f.Lost, code, msg, logID, string(b.api)); err != nil {
		return err
	}
	if err := h.inv.Want(ctx, b.a.taskID, b.p.Kind, b.ids); err != nil {
		return err
	}
	h.obs.Retry(b.p.Kind, "verify")
	b.log.Warn("batch rejected after a lost answer: waiting for a listing to tell what the lost call deleted", "err", f.Err, "ids", len(b.ids))
	return &ThrottleError{Wait: h.cfg.VerifyPoll, Err: fmt.Errorf("waiting for a listing after a lost answer: %w", f.Err)}
}

// settle decides each ID from the listing (Settle) and records it. IDs
// still present are sent again; IDs that look never to have existed are
// sent once more in a batch of their own ("recheck"), whose plain rejection
// then dead-letters them like any bad ID, archived task included. Only a
// recheck batch that is itself settled as dead is dead-lettered here.
func (h *Handler) settle(ctx context.Context, b *batch, f Facts) error {
	pres, taken, err := h.inv.Check(ctx, b.p.Kind, b.ids, f.Call.Lost)
	if err != nil {
		return err
	}
	v := Settle(b.ids, pres, f.Call.Present, f.Call.API != string(apimode.V2))
	when := taken.UTC().Format(time.RFC3339)
	var outs []ledger.Outcome
	add := func(ids []modelid.ID, st ledger.State, code int, msg string) {
		for _, id := range ids {
			o := ledger.Outcome{Kind: b.p.Kind, ID: id, State: st, Code: code, Message: msg, LogID: f.Call.LogID,
				TaskID: b.a.taskID, Attempts: b.a.retried + 1, Run: b.p.Run, API: string(b.api)}
			if st == ledger.StateDeleted {
				o.Verified = taken
			}
			outs = append(outs, o)
		}
	}
	add(v.Deleted, ledger.StateDeleted, 0, "deleted by a call whose answer was lost; verified absent from the listing started "+when)
	add(v.Presumed, ledger.StatePresumed, 0, "a call whose answer was lost most likely deleted it; no listing shows this ID form, so it could not be verified")
	final := b.p.Split == "recheck"
	if final {
		add(v.Dead, ledger.StateDead, f.Call.Code, deadMessage(f.Call, when))
	}
	var chunks [][]modelid.ID
	var whys []string
	if len(v.Again) > 0 {
		chunks, whys = append(chunks, v.Again), append(whys, "again")
	}
	if len(v.Dead) > 0 && !final {
		chunks, whys = append(chunks, v.Dead), append(whys, "recheck")
	}
	for i, c := range chunks {
		children, err := h.enqueueChildren(ctx, b.a.taskID, b.p, [][]modelid.ID{c}, whys[i])
		if err != nil {
			return err
		}
		h.obs.Split(b.p.Kind, whys[i])
		b.res.SplitInto = append(b.res.SplitInto, children...)
	}
	if err := h.write(ctx, b, outs); err != nil {
		return err
	}
	if err := h.inv.Settled(ctx, b.a.taskID, b.p.Kind); err != nil {
		return err
	}
	b.log.Info("batch settled by a listing", "listing", when, "deleted", len(v.Deleted), "presumed", len(v.Presumed),
		"sent_again", len(v.Again), "rechecked", len(v.Dead))
	b.res.Verified, b.res.Presumed = v.Deleted, v.Presumed
	if final && len(v.Dead) > 0 {
		b.res.Dead = v.Dead
		b.log.Error("dead-lettered", "ids", idStrings(v.Dead), "code", f.Call.Code, "message", deadMessage(f.Call, when), "log_id", f.Call.LogID)
	}
	if err := h.end(ctx, b); err != nil {
		return err
	}
	if final && len(v.Dead) > 0 {
		return deadError{deadMessage(f.Call, when)}
	}
	return nil
}

func deadMessage(c ledger.Call, when string) string {
	s := "not in the account: absent from the listing started " + when
	if c.Message != "" {
		s = c.Message + "; " + s
	}
	return s
}

// deadLetter records ids as dead and archives the task with the reason.
func (h *Handler) deadLetter(ctx context.Context, b *batch, cause error, ids []modelid.ID) error {
	msg := reason(b.answer, cause)
	code := 0
	if b.answer != nil {
		code = answerCode(b.answer)
		if b.answer.Message != "" {
			msg = b.answer.Message
		}
	}
	now := time.Now()
	outs := make([]ledger.Outcome, len(ids))
	for i, id := range ids {
		outs[i] = ledger.Outcome{Kind: b.p.Kind, ID: id, State: ledger.StateDead, Code: code, Message: msg, LogID: b.res.LogID,
			TaskID: b.a.taskID, Attempts: b.a.retried + 1, Run: b.p.Run, API: string(b.api), At: now}
	}
	if err := h.write(ctx, b, outs); err != nil {
		return err // retried; the dead letters are written next time
	}
	b.log.Error("dead-lettered", "ids", idStrings(ids), "code", code, "message", msg, "attempts", b.a.retried+1)
	b.res.Dead, b.res.Reason = ids, reason(b.answer, cause)
	if err := h.end(ctx, b); err != nil {
		return err
	}
	return deadError{reason(b.answer, cause)}
}

// write records outcomes and counts those written.
func (h *Handler) write(ctx context.Context, b *batch, outs []ledger.Outcome) error {
	written, err := h.ledger.Write(ctx, outs)
	if err != nil {
		return err
	}
	n := map[ledger.State]int{}
	for _, o := range written {
		n[o.State]++
	}
	for st, c := range n {
		h.obs.Outcome(b.p.Kind, b.ids[0].Type(), st, c)
	}
	return nil
}

// end drops the call record and writes the task's result.
func (h *Handler) end(ctx context.Context, b *batch) error {
	if err := h.ledger.EndCall(ctx, b.a.taskID); err != nil {
		return err
	}
	return h.finish(ctx, b)
}

func (h *Handler) finish(_ context.Context, b *batch) error {
	b.res.At = time.Now().UTC().Format(time.RFC3339)
	data, err := json.Marshal(b.res)
	if err != nil {
		return err
	}
	if w := b.t.ResultWriter(); w != nil {
		if _, err := w.Write(data); err != nil {
			h.log.Warn("could not write task result", "err", err)
		}
	}
	return nil
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
	return h.finish(ctx, &batch{t: t, res: Result{Kind: p.Kind, SplitInto: children, Reason: "over the batch size or mixed ID types"}})
}

// enqueueChildren enqueues chunks as batches whose task IDs derive from the
// parent's, so a parent delivered twice enqueues each child once. A child's
// ID starts with a hash of its parent and position, so children differ in
// the first characters asynqmon shows.
func (h *Handler) enqueueChildren(ctx context.Context, parent string, p Payload, chunks [][]modelid.ID, why string) ([]string, error) {
	var ids []string
	for i, c := range chunks {
		id := ChildTaskID(parent, why, i)
		task, err := NewBatchTask(Payload{Kind: p.Kind, IDs: c, Parent: parent, Split: why, Run: p.Run, Rule: p.Rule, DeleteInUse: p.DeleteInUse}, h.cfg.Options)
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

// ChildTaskID is the task ID of the i-th batch split from parent for why.
func ChildTaskID(parent, why string, i int) string {
	sum := sha256.Sum256([]byte(parent + "/" + why + "/" + strconv.Itoa(i)))
	return hex.EncodeToString(sum[:4]) + "-" + why + strconv.Itoa(i) + "-" + parent
}

// answerCode is the code a dead letter carries: Baidu's, else the HTTP status.
func answerCode(e *qianfan.Error) int {
	if e.Code == 0 && e.HTTPStatus != 0 {
		return e.HTTPStatus
	}
	return e.Code
}

// reason renders why a batch ended, e.g. "500001 param invalid (log_id 7)".
func reason(e *qianfan.Error, cause error) string {
	switch {
	case e != nil:
		return e.Error()
	case cause != nil:
		return cause.Error()
	}
	return ""
}

func idStrings(ids []modelid.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

func callOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	if qe, ok := errors.AsType[*qianfan.Error](err); ok {
		switch {
		case qe.Code != 0:
			return strconv.Itoa(qe.Code)
		case qe.ErrorCode != "":
			return qe.ErrorCode
		case qe.HTTPStatus != 0:
			return "http_" + strconv.Itoa(qe.HTTPStatus)
		}
	}
	return qianfan.Classify(err).String()
}
