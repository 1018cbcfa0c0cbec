package tasks

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// auto reports whether this batch may switch the fleet to V2.
func (h *Handler) auto(b *batch) bool {
	return h.cfg.API != nil && h.cfg.API.Configured() == fleet.Auto && b.api == fleet.V1
}

// effective is the API this execution deletes through.
func (h *Handler) effective(ctx context.Context) (fleet.APIMode, error) {
	if h.cfg.API == nil {
		return fleet.V1, nil
	}
	return h.cfg.API.Effective(ctx)
}

// switchToV2 moves the fleet to V2 once V1 is gone and deletes the batch
// through V2 in the same execution.
func (h *Handler) switchToV2(ctx context.Context, b *batch, f Facts) error {
	if err := h.ledger.Answered(ctx, b.a.taskID, f.Lost); err != nil {
		return err
	}
	reason := "V1 answered that it no longer serves: " + f.Err.Error()
	first, err := h.cfg.API.Switch(ctx, reason)
	if err != nil {
		return err
	}
	if first {
		h.obs.Fleet("switched")
		b.log.Error("SWITCHED TO V2 for the whole fleet: Qianfan's V1 batchDelete is gone; every batch now deletes one ID per call through V2",
			"reason", reason)
		b.rep.events = append(b.rep.events, fleetEvent{"switched", reason})
	}
	b.api = fleet.V2
	call, err := h.ledger.Call(ctx, b.a.taskID)
	if err != nil {
		return err
	}
	return h.processV2(ctx, b, call)
}

// confirmGone checks, after an answer of V1 that no table knows, whether V1
// still serves at all; a V1 read that is gone too means V1 is gone.
func (h *Handler) confirmGone(ctx context.Context) bool {
	err := h.del.ProbeV1(ctx)
	return err != nil && qianfan.IsGone(err)
}

// processV2 deletes the batch one ID per call through V2: each ID's outcome
// is recorded on its own, so a retried task calls only the IDs still
// without one. call is the batch's call record.
func (h *Handler) processV2(ctx context.Context, b *batch, call ledger.Call) error {
	targets, err := h.v2Targets(ctx, b)
	if err != nil {
		return err
	}
	if len(b.ids) == 0 {
		b.rep.finish()
		return nil
	}
	if err := h.v2Evidence(ctx, b, call); err != nil {
		return err
	}
	rec, err := h.ledger.BeginCall(ctx, b.a.taskID)
	if err != nil {
		return err
	}
	r := v2Run{lost: rec.Doubted()}
	for i, id := range b.ids {
		act, err := h.v2Call(ctx, b, &r, id, targets[i])
		if err != nil {
			return err
		}
		switch act {
		case ActThrottle, ActPause:
			b.ids = append(append(r.retry, r.doubt...), b.ids[i:]...)
			if act == ActThrottle {
				return h.throttle(ctx, b, Facts{Err: r.err, Lost: r.lost})
			}
			return h.pause(ctx, b, Facts{Err: r.err, Lost: r.lost})
		}
	}
	return h.v2End(ctx, b, r)
}

// v2Run is what one execution's V2 calls left to do.
type v2Run struct {
	lost         bool // the task's calls lost an answer before
	doubt, retry []modelid.ID
	err          error // the last failure
}

// v2Evidence notes which IDs the last listing holds: evidence, should a
// later answer be lost, without a detail call per ID.
func (h *Handler) v2Evidence(ctx context.Context, b *batch, call ledger.Call) error {
	known, _, err := h.inv.Check(ctx, b.p.Kind, b.ids, 0)
	if err != nil && !errors.Is(err, inventory.ErrNoSnapshot) {
		return err
	}
	var present []modelid.ID
	for i, p := range known {
		if p == inventory.Present && !slices.Contains(call.Present, b.ids[i]) {
			present = append(present, b.ids[i])
		}
	}
	if len(present) == 0 {
		return nil
	}
	names, err := h.names(ctx, b, present)
	if err != nil {
		return err
	}
	return h.ledger.NotePresent(ctx, b.a.taskID, present, names)
}

// v2Call deletes one ID and records its outcome when it has one, at once:
// each ID's outcome is written on its own (flush).
func (h *Handler) v2Call(ctx context.Context, b *batch, r *v2Run, id modelid.ID, target string) (Action, error) {
	start := h.now()
	res, err := h.del.DeleteOne(ctx, b.p.Kind, target)
	if ctx.Err() != nil {
		return 0, ctx.Err() // the record stays "under way": the next execution counts it lost
	}
	h.obs.Call(b.p.Kind, id.Type(), callOutcome(err), 1, h.now().Sub(start))
	qe, _ := errors.AsType[*qianfan.Error](err)
	if qe != nil {
		b.answer = qe
	}
	idLost := r.lost || res.Ambiguous || (qe != nil && qe.Ambiguous)
	act := Decide(Facts{N: 1, Called: true, Err: err, Lost: idLost, One: true, Recheck: b.p.Split == "recheck", Unsure: b.p.Unsure}).Action
	var out ledger.Outcome
	switch act {
	case ActDelete:
		out = h.outcome(b, id, ledger.StateDeleted, nil)
		out.LogID = res.LogID
		b.rep.res.Deleted = append(b.rep.res.Deleted, id)
	case ActPresume:
		out = h.outcome(b, id, ledger.StatePresumed, qe)
		out.Message = "a call whose answer was lost may have deleted it: sent again it was refused (" + qe.Error() +
			"), and no listing showed it; nothing can tell"
		b.rep.res.Presumed = append(b.rep.res.Presumed, id)
	case ActDeadLetter:
		out = h.outcome(b, id, ledger.StateDead, qe)
		if qianfan.Classify(err) == qianfan.ClassUnknown {
			out.Message = qe.Error() + "; absent from the listing after a lost answer while other IDs of the call were present"
		}
		b.rep.res.Dead = append(b.rep.res.Dead, id)
		b.log.Error("dead-lettered", "ids", []string{id.String()}, "code", out.Code, "message", out.Message, "log_id", out.LogID, "api", "v2")
	case ActVerify:
		r.doubt = append(r.doubt, id)
		if !idLost {
			// "Not found" with no lost answer behind it: no call of ours
			// deleted it, so a listing showing it absent means it never was.
			if err := h.ledger.NoteAbsent(ctx, b.a.taskID, []modelid.ID{id}); err != nil {
				return 0, err
			}
		}
		return act, nil
	case ActRetry:
		r.retry, r.err = append(r.retry, id), err
		return act, nil
	default:
		r.err = err
		return act, nil
	}
	b.rep.settled(out)
	if act == ActDelete && b.canary {
		if err := h.resume(ctx, b); err != nil {
			return 0, err
		}
	}
	if _, err := h.flush(ctx, b); err != nil {
		return 0, err
	}
	return act, nil
}

// v2End ends the execution: IDs in doubt wait for a listing, IDs that
// failed transiently are retried, and a batch with nothing left ends.
func (h *Handler) v2End(ctx context.Context, b *batch, r v2Run) error {
	switch {
	case len(r.doubt) > 0:
		b.ids = append(r.doubt, r.retry...)
		return h.verify(ctx, b, Facts{Err: fmt.Errorf("%d IDs answered in a way only a listing can settle", len(r.doubt)), Lost: true})
	case len(r.retry) > 0:
		b.ids = r.retry
		return h.retry(ctx, b, Facts{Err: r.err, Lost: r.lost})
	}
	res := &b.rep.res
	b.log.Info("batch done through V2", "deleted", len(res.Deleted), "dead", len(res.Dead))
	if len(res.Dead) > 0 && len(res.Deleted) == 0 {
		b.rep.archive(reason(b.answer, nil))
		return nil
	}
	b.rep.finish()
	return nil
}

// v2Targets returns the string ID V2 takes for each ID of the batch; an
// int ID whose string form no listing or detail call has shown is
// dead-lettered (V2 takes string IDs only) and dropped from the batch.
func (h *Handler) v2Targets(ctx context.Context, b *batch) ([]string, error) {
	if b.ids[0].Type() == modelid.IDString {
		out := make([]string, len(b.ids))
		for i, id := range b.ids {
			out[i] = id.String()
		}
		return out, nil
	}
	pairs, err := h.inv.Other(ctx, b.p.Kind, b.ids)
	if err != nil {
		return nil, err
	}
	var (
		keep    []modelid.ID
		targets []string
		dead    []ledger.Outcome
	)
	for _, id := range b.ids {
		if s, ok := pairs[id]; ok {
			keep, targets = append(keep, id), append(targets, s.String())
			continue
		}
		o := h.outcome(b, id, ledger.StateDead, nil)
		o.API = string(fleet.V2)
		o.Message = "V2 takes string IDs only, and no listing has shown this int ID's " + stringForm(b.p.Kind) +
			" form; find it in the console and enqueue that"
		dead = append(dead, o)
	}
	if len(dead) > 0 {
		b.rep.settled(dead...)
		for _, o := range dead {
			b.rep.res.Dead = append(b.rep.res.Dead, o.ID)
		}
		b.log.Error("dead-lettered: int IDs with no known string form cannot be deleted through V2", "ids", idStrings(b.rep.res.Dead))
	}
	b.ids = keep
	return targets, nil
}

func stringForm(k modelid.Kind) string {
	if k == modelid.KindVersion {
		return "amv-"
	}
	return "am-"
}
