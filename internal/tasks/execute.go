package tasks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/inuse"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// The execute step of the batch handler (see Handler): what an execution
// reads and calls before it decides. It writes the batch's call record
// (ahead of each call), asks the inventory for listings and learns ID
// pairs; what it learns for the ledger goes into the report, which it
// flushes early only where a later call must not repeat a recorded end
// (an ID deleted under its other form).

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
	b.rep.record(outs...)
	// Settled for this batch before the mark is spent: a later execution
	// (after a wait) must not send them.
	b.rep.done = append(b.rep.done, marked...)
	b.rep.spent = append(b.rep.spent, marked...)
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
// on V2 it runs the batch's calls, deciding each (processV2). A nil Facts
// with a nil error means the execution has its ending.
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
		pres, taken, err := h.inv.Check(ctx, b.p.Kind, b.ids, call.LostSeq)
		switch {
		case errors.Is(err, inventory.ErrNoSnapshot):
			if call.Probe == ledger.ProbeByName {
				if pres, taken, err = h.probe(ctx, b, call); err != nil {
					return nil, err
				}
				b.probed = pres != nil
			}
		case err != nil:
			return nil, err
		}
		if pres == nil {
			return f, nil
		}
		evident, err := h.reread(ctx, b, pres, call)
		if err != nil {
			return nil, err
		}
		absent := call.Absent
		if b.p.Split == "recheck" {
			// A recheck batch makes no detail read of its own: the
			// evidence that its IDs never existed is what a detail call
			// showed before the lost call, not a listing's absence.
			absent = append(slices.Clip(absent), b.p.Missing...)
		}
		f.Listed, b.readAt = true, taken
		f.Read = Read{IDs: b.ids, Presence: pres, Evident: evident, Absent: absent, Atomic: call.API != string(fleet.V2)}
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
		b.rep.finish()
		return nil, nil
	}
	f.N = len(b.ids)
	if !b.p.DeleteInUse {
		if err := h.guard(ctx, b); err != nil {
			if _, waiting := errors.AsType[*ThrottleError](err); !waiting && qianfan.Classify(err) != qianfan.ClassUnknown {
				// A listing refused for credentials pauses the fleet, a
				// quota waits: as a delete call's answer would. Any other
				// failure of the listings cannot tell: the batch waits,
				// never spending a retry on what is not its IDs' fault.
				f.Called, f.Err = true, err
				b.answer, _ = errors.AsType[*qianfan.Error](err)
				return f, nil
			}
			return nil, err
		}
		if len(b.ids) == 0 {
			b.rep.finish()
			return nil, nil
		}
		f.N = len(b.ids)
	}
	return f, nil
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

// callV1 makes the batch's one V1 delete call.
func (h *Handler) callV1(ctx context.Context, b *batch, f *Facts) (*Facts, error) {
	call := f.Call
	var err error
	// A recheck batch is already known absent: nothing to show.
	if call.State == "" && b.p.Split != "recheck" {
		if err := h.notePresent(ctx, b); err != nil {
			switch qianfan.Classify(err) {
			case qianfan.ClassUnknown:
				return nil, err
			case qianfan.ClassTransient:
				// A read cut short tells nothing about the IDs: wait,
				// never spending a retry (or dead-lettering) for IDs not
				// yet sent.
				h.obs.Retry(b.p.Kind, "detail")
				return nil, &ThrottleError{Wait: h.cfg.VerifyPoll, Err: fmt.Errorf("reading the batch's IDs before its call: %w", err)}
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
	b.rep.res.LogID, b.rep.res.Attempts = res.LogID, res.Attempts
	if qe != nil {
		b.rep.res.LogID, b.rep.res.Attempts = qe.LogID, qe.Attempts
	}
	if b.rep.res.LogID != "" {
		b.log = b.log.With("log_id", b.rep.res.LogID)
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
			b.rep.res.Protected = append(b.rep.res.Protected, r.ID)
		default:
			unplaced = append(unplaced, r.ID)
		}
	}
	if len(outs) > 0 {
		b.rep.record(outs...)
		b.log.Warn("not deleted: in use", "ids", idStrings(b.rep.res.Protected), "by", outs[0].Message)
	}
	if len(unplaced) > 0 {
		free, err := h.placeUnknown(ctx, b, unplaced, rs)
		if err != nil {
			return err
		}
		keep = append(keep, free...)
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
			b.rep.res.Protected = append(b.rep.res.Protected, id)
			continue
		}
		o := h.outcome(b, id, ledger.StateProtected, nil)
		o.Message = "not deleted: cannot tell whether it is in use (" + reasons[id] + "); enqueue its " + stringForm(b.p.Kind) +
			" form, or say delete_in_use"
		outs = append(outs, o)
		b.rep.res.Protected = append(b.rep.res.Protected, id)
	}
	if len(outs) > 0 {
		b.rep.record(outs...)
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
	// Written now: only what the ledger takes counts as deleted.
	b.rep.record(outs...)
	written, err := h.flush(ctx, b)
	if err != nil {
		return nil, err
	}
	out := map[modelid.ID]bool{}
	for _, o := range written {
		if _, ok := byForm[others[o.ID]]; ok && o.State == ledger.StateDeleted {
			out[o.ID] = true
			b.rep.res.AlreadyDeleted = append(b.rep.res.AlreadyDeleted, o.ID)
		}
	}
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
