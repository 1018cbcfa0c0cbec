package tasks

import (
	"context"
	"errors"
	"sync"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/tracing"
)

// batchSpan is one execution's span and the outcomes it wrote. It exists
// only when the span records: with tracing off the handler pays one no-op
// Start and nothing else.
type batchSpan struct {
	span     trace.Span
	mu       sync.Mutex
	outcomes map[ledger.State]int
}

type batchSpanKey struct{}

// startSpan starts the span of one execution. A batch merges jobs of many
// requests, so it is a root span linked to each request's span (the trace
// context the producer stored), not a child of any one of them; the
// Qianfan calls made under ctx are its children.
func (h *Handler) startSpan(ctx context.Context, t *asynq.Task, a attempt) (context.Context, *batchSpan) {
	ctx, span := h.tr.Start(ctx, "qfpurge.batch", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot())
	if !span.IsRecording() {
		return ctx, nil
	}
	span.SetAttributes(
		attribute.String("qfpurge.task_id", a.taskID),
		attribute.String("qfpurge.task_type", t.Type()),
		attribute.Int("qfpurge.attempt", a.retried+1),
		attribute.Int("qfpurge.max_retry", a.maxRetry),
	)
	if p, err := DecodePayload(t.Payload()); err == nil {
		span.SetAttributes(attribute.String("qfpurge.kind", string(p.Kind)), attribute.Int("qfpurge.ids", len(p.IDs)))
		if len(p.IDs) > 0 {
			span.SetAttributes(attribute.String("qfpurge.id_type", string(p.IDs[0].Type())))
		}
		for k, v := range map[string]string{"qfpurge.run": p.Run, "qfpurge.rule": p.Rule, "qfpurge.split": p.Split, "qfpurge.parent": p.Parent} {
			if v != "" {
				span.SetAttributes(attribute.String(k, v))
			}
		}
		if p.DeleteInUse {
			span.SetAttributes(attribute.Bool("qfpurge.delete_in_use", true))
		}
		for _, l := range originLinks(p) {
			span.AddLink(l)
		}
	}
	bs := &batchSpan{span: span, outcomes: map[ledger.State]int{}}
	return context.WithValue(ctx, batchSpanKey{}, bs), bs
}

// originLinks links the batch to the span of each request it carries IDs
// of, once per span, saying how many of the batch's IDs that request asked
// for.
func originLinks(p Payload) []trace.Link {
	os := p.Origins
	var in map[modelid.ID]bool
	if len(os) == 0 {
		os = []Origin{{Key: p.Key, RequestedBy: p.RequestedBy, Traceparent: p.Traceparent, Tracestate: p.Tracestate}}
	} else {
		in = make(map[modelid.ID]bool, len(p.IDs))
		for _, id := range p.IDs {
			in[id] = true
		}
	}
	var links []trace.Link
	at := map[trace.SpanID]int{}
	for _, o := range os {
		sc, ok := tracing.Parse(o.Traceparent, o.Tracestate)
		if !ok {
			continue
		}
		n := len(p.IDs) // one request: every ID is its
		if in != nil {
			n = 0
			for _, id := range o.IDs {
				if in[id] {
					n++
				}
			}
		}
		if n == 0 {
			continue // a split batch holds none of this request's IDs
		}
		if i, ok := at[sc.SpanID()]; ok {
			links[i].Attributes[0] = attribute.Int("qfpurge.ids", int(links[i].Attributes[0].Value.AsInt64())+n)
			continue
		}
		attrs := []attribute.KeyValue{attribute.Int("qfpurge.ids", n)}
		if o.Key != "" {
			attrs = append(attrs, attribute.String("qfpurge.request.key", o.Key))
		}
		if o.RequestedBy != "" {
			attrs = append(attrs, attribute.String("qfpurge.requested_by", o.RequestedBy))
		}
		at[sc.SpanID()] = len(links)
		links = append(links, trace.Link{SpanContext: sc, Attributes: attrs})
	}
	return links
}

// traceOutcomes counts outcomes written by the execution under ctx.
func traceOutcomes(ctx context.Context, written []ledger.Outcome) {
	bs, _ := ctx.Value(batchSpanKey{}).(*batchSpan)
	if bs == nil {
		return
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, o := range written {
		bs.outcomes[o.State]++
	}
}

// traceResult notes what the task's result says beyond its outcomes.
func traceResult(ctx context.Context, r Result) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if len(r.SplitInto) > 0 {
		span.SetAttributes(attribute.Int("qfpurge.split_into", len(r.SplitInto)))
	}
	if r.LogID != "" {
		span.SetAttributes(attribute.String("qianfan.log_id", r.LogID))
	}
}

// end ends the span with the execution's outcome counts and how it ended:
// done, waiting (handed back without using up a retry), dead, or failed
// (retried).
func (bs *batchSpan) end(err error) {
	if bs == nil {
		return
	}
	bs.mu.Lock()
	for st, n := range bs.outcomes {
		bs.span.SetAttributes(attribute.Int("qfpurge.outcome."+string(st), n))
	}
	bs.mu.Unlock()
	var te *ThrottleError
	switch {
	case err == nil:
		bs.span.SetAttributes(attribute.String("qfpurge.result", "done"))
	case errors.As(err, &te):
		bs.span.SetAttributes(attribute.String("qfpurge.result", "waiting"), attribute.String("qfpurge.wait", te.Wait.String()))
		bs.span.SetStatus(codes.Unset, "")
		bs.span.AddEvent("waiting", trace.WithAttributes(attribute.String("reason", te.Err.Error())))
	case errors.Is(err, asynq.SkipRetry):
		bs.span.SetAttributes(attribute.String("qfpurge.result", "dead"))
		bs.span.SetStatus(codes.Error, err.Error())
	default:
		bs.span.SetAttributes(attribute.String("qfpurge.result", "failed"))
		bs.span.SetStatus(codes.Error, err.Error())
	}
	bs.span.End()
}
