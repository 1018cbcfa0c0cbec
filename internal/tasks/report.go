package tasks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// ending is how an execution ends in Asynq: each ends in exactly one.
type ending int

const (
	// endNone: not decided yet.
	endNone ending = iota
	// endRetry hands the task back to Asynq, spending a retry.
	endRetry
	// endWait hands it back to Asynq after report.wait, spending no retry.
	endWait
	// endDone completes the task: its call record is dropped and its
	// result written.
	endDone
	// endArchive archives it at once, as endDone otherwise: its IDs are
	// dead letters, recorded with their reason.
	endArchive
)

// report is what an execution leaves behind besides its calls: the
// outcomes it records, the batches it splits off, the fleet events, the
// task's result and its one ending. The execute and decide steps only add
// to it; Handler.report alone writes it.
type report struct {
	outs   []ledger.Outcome
	done   []modelid.ID // settled for the call record once outs are written
	spent  []modelid.ID // cancel-by-ID marks spent once outs are written
	splits []split
	events []fleetEvent
	// through: a batch of this lost call's line went through (NoteThrough),
	// noted once its outcomes are written.
	through string
	res     Result

	end    ending
	wait   time.Duration // endWait
	err    error         // endRetry, endWait
	reason string        // endArchive
}

// split is a set of batches to enqueue, split off for why.
type split struct {
	p      Payload
	chunks [][]modelid.ID
	why    string
}

type fleetEvent struct{ event, reason string }

// finish ends the execution: the task completes.
func (r *report) finish() { r.end = endDone }

// retryWith ends the execution handing the task back, spending a retry.
func (r *report) retryWith(err error) { r.end, r.err = endRetry, err }

// waitFor ends the execution handing the task back after d, spending no
// retry.
func (r *report) waitFor(d time.Duration, err error) { r.end, r.wait, r.err = endWait, d, err }

// archive ends the execution archiving the task at once with reason.
func (r *report) archive(reason string) { r.end, r.reason = endArchive, reason }

// record adds outcomes to write.
func (r *report) record(outs ...ledger.Outcome) { r.outs = append(r.outs, outs...) }

// settled adds outcomes to write, then marks their IDs settled for the
// task's call record, so a later execution of the task does not send them.
func (r *report) settled(outs ...ledger.Outcome) {
	r.record(outs...)
	for _, o := range outs {
		r.done = append(r.done, o.ID)
	}
}

// splitOff adds batches to enqueue.
func (r *report) splitOff(p Payload, chunks [][]modelid.ID, why string) {
	r.splits = append(r.splits, split{p: p, chunks: chunks, why: why})
}

// outcome is the one place an outcome is built: the batch's kind, task,
// attempt, rule run and API, and the answer's code, message and log_id when
// there is one.
func (h *Handler) outcome(b *batch, id modelid.ID, st ledger.State, answer *qianfan.Error) ledger.Outcome {
	o := ledger.Outcome{Kind: b.p.Kind, ID: id, State: st, LogID: b.rep.res.LogID, TaskID: b.a.taskID,
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

// flush writes what the report holds so far, in the order a crash
// between two writes needs: the outcomes (one ledger operation, which also
// writes their events and dead letters), then the call record's settled
// IDs and the spent cancel marks, then the fleet events. It returns the
// outcomes the ledger took (a transition it refuses is not written).
// V2's calls flush after each ID, so a retried task calls only the IDs
// still without an outcome.
func (h *Handler) flush(ctx context.Context, b *batch) ([]ledger.Outcome, error) {
	r := &b.rep
	var written []ledger.Outcome
	if len(r.outs) > 0 {
		var err error
		if written, err = h.ledger.Write(ctx, r.outs); err != nil {
			return nil, err
		}
		traceOutcomes(ctx, written)
		type key struct {
			st ledger.State
			t  modelid.IDType
		}
		n := map[key]int{}
		for _, o := range written {
			if o.Kind != "" { // an unreadable payload has no kind to count under
				n[key{o.State, o.ID.Type()}]++
			}
		}
		for k, c := range n {
			h.obs.Outcome(b.p.Kind, k.t, k.st, c)
		}
		r.outs = nil
	}
	if len(r.done) > 0 {
		if err := h.ledger.NoteDone(ctx, b.a.taskID, r.done); err != nil {
			return nil, err
		}
		b.call.Done = append(b.call.Done, r.done...)
		r.done = nil
	}
	if r.through != "" {
		// That call deleted nothing, so its other IDs refused alone are
		// really refused.
		if err := h.ledger.NoteThrough(ctx, r.through); err != nil {
			return nil, err
		}
		r.through = ""
	}
	if len(r.spent) > 0 {
		if err := h.ledger.ClearCancelIDs(ctx, b.p.Kind, r.spent); err != nil {
			return nil, err
		}
		r.spent = nil
	}
	for len(r.events) > 0 {
		if err := h.ledger.FleetEvent(ctx, r.events[0].event, r.events[0].reason); err != nil {
			return nil, err
		}
		r.events = r.events[1:]
	}
	return written, nil
}

// report writes what the execution leaves behind and returns its Asynq
// ending; failed is the error an execution stopped on before it decided
// (a ThrottleError waits, anything else is retried). It is the only
// place that enqueues split batches, ends the call record and writes the
// task's result.
func (h *Handler) report(ctx context.Context, b *batch, failed error) error {
	r := &b.rep
	switch te, waiting := errors.AsType[*ThrottleError](failed); {
	case waiting:
		r.waitFor(te.Wait, te.Err)
	case failed != nil:
		r.retryWith(failed)
	case r.end == endNone:
		r.retryWith(errors.New("the batch handler ended an execution without a decision"))
	}
	if _, err := h.flush(ctx, b); err != nil {
		return err
	}
	for _, s := range r.splits {
		children, err := h.enqueueChildren(ctx, b.a.taskID, s.p, s.chunks, s.why)
		if err != nil {
			return err
		}
		h.obs.Split(b.p.Kind, s.why)
		r.res.SplitInto = append(r.res.SplitInto, children...)
	}
	r.splits = nil
	switch r.end {
	case endRetry:
		return r.err
	case endWait:
		return &ThrottleError{Wait: r.wait, Err: r.err}
	}
	if b.a.taskID != "" {
		if err := h.ledger.EndCall(ctx, b.a.taskID); err != nil {
			return err
		}
	}
	h.writeResult(ctx, b)
	if r.end == endArchive {
		return deadError{r.reason}
	}
	return nil
}

// writeResult writes the task's result: asynqmon's completed tab is the
// audit trail.
func (h *Handler) writeResult(ctx context.Context, b *batch) {
	res := &b.rep.res
	traceResult(ctx, *res)
	res.At = h.now().UTC().Format(time.RFC3339)
	data, err := json.Marshal(res)
	if err != nil {
		h.log.Warn("could not encode task result", "err", err)
		return
	}
	if w := b.t.ResultWriter(); w != nil {
		if _, err := w.Write(data); err != nil {
			h.log.Warn("could not write task result", "err", err)
		}
	}
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
			DeleteInUse: p.DeleteInUse, LostIn: p.LostIn, Unsure: p.Unsure, Missing: p.Missing,
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
