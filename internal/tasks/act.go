package tasks

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/inventory"
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
	Refused        []modelid.ID `json:"refused,omitempty"`
	SplitInto      []string     `json:"split_into,omitempty"`
	Reason         string       `json:"reason,omitempty"`
	LogID          string       `json:"log_id,omitempty"`
	Attempts       int          `json:"attempts,omitempty"`
	At             string       `json:"at"`
}

// outcome is the one place an outcome is built: the batch's kind, task,
// attempt, rule run and API, and the answer's code, message and log_id when
// there is one.
func (h *Handler) outcome(b *batch, id modelid.ID, st ledger.State, answer *qianfan.Error) ledger.Outcome {
	o := ledger.Outcome{Kind: b.p.Kind, ID: id, State: st, LogID: b.res.LogID, TaskID: b.a.taskID,
		Attempts: b.a.retried + 1, Run: b.p.Run, API: string(cmp.Or(b.api, fleet.V1)), DeleteInUse: b.p.DeleteInUse, At: h.now()}
	o.Key, o.RequestedBy = b.p.OriginOf(id)
	if answer != nil {
		o.Code, o.Message = answerCode(answer), answer.Message
		if answer.LogID != "" {
			o.LogID = answer.LogID
		}
	}
	return o
}

// outcomes builds one outcome per ID.
func (h *Handler) outcomes(b *batch, ids []modelid.ID, st ledger.State, answer *qianfan.Error) []ledger.Outcome {
	outs := make([]ledger.Outcome, len(ids))
	for i, id := range ids {
		outs[i] = h.outcome(b, id, st, answer)
	}
	return outs
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
		if f.Evident && !f.Lost && !f.Call.Doubted() {
			// Refused although shown to exist before the call: only a
			// listing taken from now on can tell, as after a lost answer.
			f.Lost = true
		}
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
	case ActPresume:
		return h.presume(ctx, b, f)
	case ActPaused:
		h.obs.Retry(b.p.Kind, "paused")
		return &ThrottleError{Wait: h.cfg.PausePoll, Err: errors.New("deletions are paused for the whole fleet (see qfpurge pause status)")}
	default:
		return fmt.Errorf("no action for %v", a)
	}
}

// deleted records a successful call.
func (h *Handler) deleted(ctx context.Context, b *batch, f Facts) error {
	if err := h.write(ctx, b, h.outcomes(b, b.ids, ledger.StateDeleted, nil)); err != nil {
		return err
	}
	if b.p.LostIn != "" {
		// A batch of a lost call's line went through: that call deleted
		// nothing, so its other IDs refused alone are really refused.
		if err := h.ledger.NoteThrough(ctx, b.p.LostIn); err != nil {
			return err
		}
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
			why = b.answer.CredentialText() + " (" + b.answer.Error() + ")"
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
	rec, err := h.ledger.Call(ctx, b.a.taskID)
	if err != nil {
		return err
	}
	if rec.Probe == "" {
		rec.Probe = ledger.ProbeListing
		if ok, err := h.chooseProbe(ctx, b, rec); err != nil {
			return err
		} else if ok {
			rec.Probe = ledger.ProbeByName
		}
		if err := h.ledger.NoteProbe(ctx, b.a.taskID, rec.Probe); err != nil {
			return err
		}
	}
	if rec.Probe == ledger.ProbeByName {
		h.obs.Retry(b.p.Kind, "verify")
		b.log.Warn("batch rejected after a lost answer: its IDs will be read by name to tell what the lost call deleted", "err", f.Err, "ids", len(b.ids))
		return &ThrottleError{Wait: h.cfg.VerifyPoll, Err: fmt.Errorf("waiting to read the IDs by name after a lost answer: %w", f.Err)}
	}
	if err := h.inv.Want(ctx, b.a.taskID, b.p.Kind, b.ids, rec.LostSeq, h.now()); err != nil {
		return err
	}
	h.obs.Retry(b.p.Kind, "verify")
	b.log.Warn("batch rejected after a lost answer: waiting for a listing to tell what the lost call deleted", "err", f.Err, "ids", len(b.ids))
	return &ThrottleError{Wait: h.cfg.VerifyPoll, Err: fmt.Errorf("waiting for a listing after a lost answer: %w", f.Err)}
}

// settle decides each ID from the listing (Settle) and records it. IDs
// still present are sent again; IDs that look never to have existed are
// sent once more in a batch of their own ("recheck"), whose plain rejection
// then dead-letters them like any bad ID, archived task included; IDs
// nothing can decide are sent again ("resend") with the lost call's line
// (Payload.LostIn, Unsure), so their own answers decide. Only a recheck
// batch that is itself settled as dead is dead-lettered here.
func (h *Handler) settle(ctx context.Context, b *batch, f Facts) error {
	pres, taken, by := b.probed, b.probedAt, "reads by name"
	if pres == nil {
		var err error
		if pres, taken, err = h.inv.Check(ctx, b.p.Kind, b.ids, f.Call.LostSeq); err != nil {
			return err
		}
		by = "a listing"
	}
	listing := "the listing started "
	if b.probed != nil {
		listing = "a read by name (" + probeSource(b.p.Kind) + ") started "
	}
	evident, err := h.reread(ctx, b, pres, f.Call)
	if err != nil {
		return err
	}
	v := Settle(b.ids, pres, evident, f.Call.Absent, f.Call.API != string(fleet.V2))
	when := taken.UTC().Format(time.RFC3339)
	var outs []ledger.Outcome
	add := func(ids []modelid.ID, st ledger.State, msg string) {
		for _, id := range ids {
			o := h.outcome(b, id, st, nil)
			o.LogID, o.Message = f.Call.LogID, msg
			if st == ledger.StateDeleted {
				o.Verified = taken
			}
			if st == ledger.StateDead {
				o.Code = f.Call.Code
			}
			outs = append(outs, o)
		}
	}
	add(v.Deleted, ledger.StateDeleted, "shown to exist before the call, absent from "+listing+when+": deleted")
	add(v.Presumed, ledger.StatePresumed, "a call whose answer was lost most likely deleted it; no listing shows this ID form, so it could not be verified")
	final := b.p.Split == "recheck"
	if final {
		add(v.Dead, ledger.StateDead, deadMessage(f.Call, listing+when))
	}
	line := cmp.Or(b.p.LostIn, b.a.taskID)
	if f.Call.API == string(fleet.V2) {
		line = "" // V2 deletes one ID per call: no line to learn from
	}
	for _, c := range []struct {
		ids    []modelid.ID
		why    string
		unsure bool
	}{{v.Again, "again", false}, {v.Dead, "recheck", false}, {v.Resend, "resend", true}} {
		if len(c.ids) == 0 || (c.why == "recheck" && final) {
			continue
		}
		p := b.p
		p.LostIn, p.Unsure = line, c.unsure || b.p.Unsure
		children, err := h.enqueueChildren(ctx, b.a.taskID, p, [][]modelid.ID{c.ids}, c.why)
		if err != nil {
			return err
		}
		h.obs.Split(b.p.Kind, c.why)
		b.res.SplitInto = append(b.res.SplitInto, children...)
	}
	if err := h.write(ctx, b, outs); err != nil {
		return err
	}
	if err := h.inv.Settled(ctx, b.a.taskID, b.p.Kind); err != nil {
		return err
	}
	b.log.Info("batch settled by "+by, "listing", when, "deleted", len(v.Deleted), "presumed", len(v.Presumed),
		"sent_again", len(v.Again), "rechecked", len(v.Dead), "resent", len(v.Resend))
	b.res.Verified, b.res.Presumed = v.Deleted, v.Presumed
	if final && len(v.Dead) > 0 {
		b.res.Dead = v.Dead
		b.log.Error("dead-lettered", "ids", idStrings(v.Dead), "code", f.Call.Code, "message", deadMessage(f.Call, listing+when), "log_id", f.Call.LogID)
	}
	if err := h.end(ctx, b); err != nil {
		return err
	}
	if final && len(v.Dead) > 0 {
		return deadError{deadMessage(f.Call, listing+when)}
	}
	return nil
}

// reread asks a detail call, after the loss, about each ID that a detail
// call showed before the first call and the listing does not show: a
// listing need not return every model, so its absence proves nothing for
// them. Found, the ID is present (pres is updated); not found, it existed
// and is gone: evident. It returns the IDs whose absence proves deletion.
func (h *Handler) reread(ctx context.Context, b *batch, pres []inventory.Presence, call ledger.Call) ([]modelid.ID, error) {
	evident := slices.Clone(call.Present)
	for i, id := range b.ids {
		if pres[i] == inventory.Present || slices.Contains(call.Present, id) || !slices.Contains(call.Seen, id) {
			continue
		}
		start := h.now()
		found, _, err := h.del.Describe(ctx, b.p.Kind, id)
		h.obs.Call(b.p.Kind, id.Type(), describeOutcome(found, err), 1, h.now().Sub(start))
		if err != nil {
			h.obs.Retry(b.p.Kind, "verify")
			return nil, &ThrottleError{Wait: h.cfg.VerifyPoll, Err: fmt.Errorf("reading %s again to settle a lost answer: %w", id, err)}
		}
		if found {
			pres[i] = inventory.Present
			continue
		}
		pres[i] = inventory.Absent
		evident = append(evident, id)
	}
	return evident, nil
}

// presume records a batch refused alone after a lost answer that nothing
// could settle: no listing showed it, and no batch of the lost call's line
// went through to show the call deleted nothing.
func (h *Handler) presume(ctx context.Context, b *batch, f Facts) error {
	outs := h.outcomes(b, b.ids, ledger.StatePresumed, b.answer)
	for i := range outs {
		outs[i].Message = "a call whose answer was lost may have deleted it: sent again it was refused (" + reason(b.answer, f.Err) +
			"), no listing showed it, and no other ID of that call went through; nothing can tell"
	}
	if err := h.write(ctx, b, outs); err != nil {
		return err
	}
	b.log.Warn("presumed deleted: refused after a lost answer that nothing can settle", "ids", idStrings(b.ids))
	b.res.Presumed, b.res.Reason = b.ids, reason(b.answer, f.Err)
	return h.end(ctx, b)
}

// probeSource names what a read by name of kind k reads.
func probeSource(k modelid.Kind) string {
	if k == modelid.KindVersion {
		return "its model's detail, which lists all its versions"
	}
	return "the V1 listing filtered by its name"
}

// deadMessage says why a settled ID is dead; from is the read, "the
// listing started <time>".
func deadMessage(c ledger.Call, from string) string {
	s := "not in the account: absent from " + from
	if c.Message != "" {
		s = c.Message + "; " + s
	}
	return s
}

// deadLetter records ids as dead and archives the task with the reason;
// an ID whose other form the ledger holds as deleted meanwhile is recorded
// deleted instead.
func (h *Handler) deadLetter(ctx context.Context, b *batch, cause error, ids []modelid.ID) error {
	byOther, err := h.goneAsOther(ctx, b, ids, nil)
	if err != nil {
		return err
	}
	var dead []modelid.ID
	for _, id := range ids {
		if !byOther[id] {
			dead = append(dead, id)
		}
	}
	if len(dead) == 0 {
		return h.end(ctx, b)
	}
	outs := h.outcomes(b, dead, ledger.StateDead, b.answer)
	for i := range outs {
		if outs[i].Message == "" {
			outs[i].Message = reason(b.answer, cause)
		}
	}
	if err := h.write(ctx, b, outs); err != nil {
		return err // retried; the dead letters are written next time
	}
	b.log.Error("dead-lettered", "ids", idStrings(dead), "code", outs[0].Code, "message", outs[0].Message, "attempts", b.a.retried+1)
	b.res.Dead, b.res.Reason = dead, reason(b.answer, cause)
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
	traceOutcomes(ctx, written)
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

func (h *Handler) finish(ctx context.Context, b *batch) error {
	traceResult(ctx, b.res)
	b.res.At = h.now().UTC().Format(time.RFC3339)
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
		task, err := NewBatchTask(Payload{Kind: p.Kind, IDs: c, Parent: parent, Split: why, Run: p.Run, Rule: p.Rule,
			DeleteInUse: p.DeleteInUse, LostIn: p.LostIn, Unsure: p.Unsure,
			RequestedBy: p.RequestedBy, Key: p.Key, Names: p.Names, Traceparent: p.Traceparent, Tracestate: p.Tracestate,
			Origins: p.Origins, Asked: p.Asked}, h.cfg.Options)
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
