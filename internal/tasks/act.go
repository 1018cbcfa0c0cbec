package tasks

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/qfpurge/qfpurge/internal/fleet"
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

// act turns the decision for f into the report: what to record, what to
// split off, how the execution ends. Some actions still read or call on
// their way: a wait for a listing asks the inventory for one, a settle
// reads by name, a switch to V2 runs the V2 calls, and a retry probes V1
// before calling it gone.
func (h *Handler) act(ctx context.Context, b *batch, f Facts) error {
	d := Decide(f)
	if b.canary && f.Called && d.Action != ActPause {
		// Qianfan took the call (whatever it said of the IDs): the
		// credentials work again.
		if err := h.resume(ctx, b); err != nil {
			return err
		}
	}
	r := &b.rep
	switch d.Action {
	case ActDelete:
		h.deleted(b, f)
	case ActRetry:
		return h.retry(ctx, b, f)
	case ActThrottle:
		return h.throttle(ctx, b, f)
	case ActBisect:
		half := len(b.ids) / 2
		r.splitOff(b.p, [][]modelid.ID{b.ids[:half], b.ids[half:]}, "bisect")
		b.log.Warn("batch rejected, bisecting", "reason", reason(b.answer, nil), "ids", len(b.ids))
		r.res.Reason = reason(b.answer, nil)
		r.finish()
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
		r.waitFor(h.cfg.VerifyPoll, errors.New("waiting for a listing to tell whether a lost call deleted these IDs"))
	case ActSettle:
		return h.settle(ctx, b, f, d.Verdict)
	case ActHold:
		h.obs.Retry(b.p.Kind, "hold")
		r.waitFor(2*time.Second, errors.New("a listing is under way and asks for no deletions meanwhile"))
	case ActPause:
		return h.pause(ctx, b, f)
	case ActSwitch:
		return h.switchToV2(ctx, b, f)
	case ActPresume:
		h.presume(b, f)
	case ActPaused:
		h.obs.Retry(b.p.Kind, "paused")
		r.waitFor(h.cfg.PausePoll, errors.New("deletions are paused for the whole fleet (see qfpurge pause status)"))
	default:
		return fmt.Errorf("no action for %v", d.Action)
	}
	return nil
}

// deleted records a successful call.
func (h *Handler) deleted(b *batch, f Facts) {
	b.rep.record(h.outcomes(b, b.ids, ledger.StateDeleted, nil)...)
	// A batch of a lost call's line went through: that call deleted
	// nothing.
	b.rep.through = b.p.LostIn
	b.log.Info("batch deleted", "ids", len(b.ids), "attempts", b.rep.res.Attempts, "lost_answers_before", f.Call.Doubted())
	b.rep.res.Deleted = b.ids
	b.rep.finish()
}

// resume ends a pause after the canary call went through.
func (h *Handler) resume(ctx context.Context, b *batch) error {
	b.canary = false
	was, err := h.cfg.Pause.Resume(ctx)
	if err != nil || !was {
		return err
	}
	h.obs.Fleet("resumed")
	h.log.Warn("deletions resumed for the whole fleet: a call with the credentials went through")
	b.rep.events = append(b.rep.events, fleetEvent{"resumed", "a delete call with the credentials went through"})
	return nil
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
		b.rep.waitFor(h.cfg.PausePoll, f.Err)
		return nil
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
		b.rep.events = append(b.rep.events, fleetEvent{"paused", why})
	case b.canary:
		b.log.Warn("the credentials test call was refused again; deletions stay paused", "reason", why)
	default:
		b.log.Debug("request refused while the fleet is pausing", "err", f.Err)
	}
	b.rep.waitFor(h.cfg.PausePoll, fmt.Errorf("deletions paused: %s", why))
	return nil
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
	b.rep.retryWith(f.Err)
	return nil
}

// throttle hands the batch back to Asynq later, using up no retry.
func (h *Handler) throttle(ctx context.Context, b *batch, f Facts) error {
	if err := h.ledger.Answered(ctx, b.a.taskID, f.Lost); err != nil {
		return err
	}
	h.obs.Retry(b.p.Kind, "throttled")
	b.log.Warn("batch throttled", "err", f.Err)
	b.rep.waitFor(throttleWait(f.Err), f.Err)
	return nil
}

// verify parks a batch rejected after a lost answer until a listing taken
// afterwards (or reads by name) can tell which IDs the lost call deleted.
func (h *Handler) verify(ctx context.Context, b *batch, f Facts) error {
	code, msg, logID := 0, "", b.rep.res.LogID
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
	h.obs.Retry(b.p.Kind, "verify")
	if rec.Probe == ledger.ProbeByName {
		b.log.Warn("batch rejected after a lost answer: its IDs will be read by name to tell what the lost call deleted", "err", f.Err, "ids", len(b.ids))
		b.rep.waitFor(h.cfg.VerifyPoll, fmt.Errorf("waiting to read the IDs by name after a lost answer: %w", f.Err))
		return nil
	}
	if err := h.inv.Want(ctx, b.a.taskID, b.p.Kind, b.ids, rec.LostSeq, h.now()); err != nil {
		return err
	}
	b.log.Warn("batch rejected after a lost answer: waiting for a listing to tell what the lost call deleted", "err", f.Err, "ids", len(b.ids))
	b.rep.waitFor(h.cfg.VerifyPoll, fmt.Errorf("waiting for a listing after a lost answer: %w", f.Err))
	return nil
}

// settle records each ID as the read after the lost answer decided it
// (v). IDs still present are sent again; IDs that look never to have
// existed are sent once more in a batch of their own ("recheck"), whose
// plain rejection then dead-letters them like any bad ID, archived task
// included; IDs nothing can decide are sent again ("resend") with the lost
// call's line (Payload.LostIn, Unsure), so their own answers decide. Only
// a recheck batch that is itself settled as dead is dead-lettered here.
func (h *Handler) settle(ctx context.Context, b *batch, f Facts, v Verdict) error {
	by, listing := "a listing", "the listing started "
	if b.probed {
		by, listing = "reads by name", "a read by name ("+probeSource(b.p.Kind)+") started "
	}
	when := b.readAt.UTC().Format(time.RFC3339)
	r := &b.rep
	add := func(ids []modelid.ID, st ledger.State, msg string) {
		for _, id := range ids {
			o := h.outcome(b, id, st, nil)
			o.LogID, o.Message = f.Call.LogID, msg
			if st == ledger.StateDeleted {
				o.Verified = b.readAt
			}
			if st == ledger.StateDead {
				o.Code = f.Call.Code
			}
			r.record(o)
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
		p.LostIn, p.Unsure, p.Missing = line, c.unsure || b.p.Unsure, nil
		if c.why == "recheck" {
			for _, id := range c.ids {
				if slices.Contains(f.Call.Absent, id) {
					p.Missing = append(p.Missing, id)
				}
			}
		}
		r.splitOff(p, [][]modelid.ID{c.ids}, c.why)
	}
	if err := h.inv.Settled(ctx, b.a.taskID, b.p.Kind); err != nil {
		return err
	}
	b.log.Info("batch settled by "+by, "listing", when, "deleted", len(v.Deleted), "presumed", len(v.Presumed),
		"sent_again", len(v.Again), "rechecked", len(v.Dead), "resent", len(v.Resend))
	r.res.Verified, r.res.Presumed = v.Deleted, v.Presumed
	if final && len(v.Dead) > 0 {
		r.res.Dead = v.Dead
		b.log.Error("dead-lettered", "ids", idStrings(v.Dead), "code", f.Call.Code, "message", deadMessage(f.Call, listing+when), "log_id", f.Call.LogID)
		r.archive(deadMessage(f.Call, listing+when))
		return nil
	}
	r.finish()
	return nil
}

// presume records a batch refused alone after a lost answer that nothing
// could settle: no listing showed it, and no batch of the lost call's line
// went through to show the call deleted nothing.
func (h *Handler) presume(b *batch, f Facts) {
	outs := h.outcomes(b, b.ids, ledger.StatePresumed, b.answer)
	for i := range outs {
		outs[i].Message = "a call whose answer was lost may have deleted it: sent again it was refused (" + reason(b.answer, f.Err) +
			"), no listing showed it, and no other ID of that call went through; nothing can tell"
	}
	b.rep.record(outs...)
	b.log.Warn("presumed deleted: refused after a lost answer that nothing can settle", "ids", idStrings(b.ids))
	b.rep.res.Presumed, b.rep.res.Reason = b.ids, reason(b.answer, f.Err)
	b.rep.finish()
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
		b.rep.finish()
		return nil
	}
	outs := h.outcomes(b, dead, ledger.StateDead, b.answer)
	for i := range outs {
		if outs[i].Message == "" {
			outs[i].Message = reason(b.answer, cause)
		}
	}
	b.rep.record(outs...)
	b.log.Error("dead-lettered", "ids", idStrings(dead), "code", outs[0].Code, "message", outs[0].Message, "attempts", b.a.retried+1)
	b.rep.res.Dead, b.rep.res.Reason = dead, reason(b.answer, cause)
	b.rep.archive(reason(b.answer, cause))
	return nil
}

// unreadable dead-letters a payload nobody can act on, keeping its text.
func (h *Handler) unreadable(b *batch, raw string, cause error) {
	if len(raw) > 512 {
		raw = raw[:512] + "…"
	}
	h.log.Error("unreadable task payload dead-lettered", "task_id", b.a.taskID, "err", cause)
	o := h.outcome(b, modelid.StringID("unreadable"), ledger.StateDead, nil)
	// Not an ID of the batch's kind, and never sent.
	o.Kind, o.API, o.Message = "", "", cause.Error()+": "+raw
	b.rep.record(o)
}

// fanOut splits a batch that is too big or mixes ID types into ready
// batches, without calling the API.
func (h *Handler) fanOut(b *batch, ints, strs []modelid.ID) {
	chunks := append(modelid.Chunk(ints, h.cfg.BatchSize), modelid.Chunk(strs, h.cfg.BatchSize)...)
	b.rep.splitOff(b.p, chunks, "oversize")
	b.log.Info("batch split before calling", "ids", len(ints)+len(strs), "batches", len(chunks))
	b.rep.res.Reason = "over the batch size or mixed ID types"
	b.rep.finish()
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
