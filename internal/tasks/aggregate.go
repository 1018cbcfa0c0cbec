package tasks

import (
	"log/slog"
	"slices"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Aggregator merges a group's small jobs into one batch task. It never
// returns nil and never panics out: Asynq strands a group's tasks on nil and
// a panic there kills the worker.
type Aggregator struct {
	Options Options
	Logger  *slog.Logger
}

// Aggregate implements asynq.GroupAggregator. IDs are merged and
// de-duplicated; a merged batch over the batch size (many multi-ID jobs in
// one group) is split by the handler before any call, so no call ever carries
// more than the batch size.
func (a *Aggregator) Aggregate(group string, ts []*asynq.Task) (out *asynq.Task) {
	log := a.Logger
	if log == nil {
		log = slog.Default()
	}
	kind, _, _, gerr := ParseGroupName(group)
	var p Payload
	defer func() {
		if r := recover(); r != nil {
			log.Error("aggregator panicked; keeping the jobs as unreadable", "group", group, "panic", r)
			out = a.fallback(ts, kind)
		}
	}()
	var origins []Origin
	for _, t := range ts {
		jp, err := DecodePayload(t.Payload())
		if err != nil || (p.Kind != "" && jp.Kind != p.Kind) || (gerr == nil && jp.Kind != kind) {
			p.Rejected = append(p.Rejected, string(t.Payload()))
			continue
		}
		p.Kind = jp.Kind
		p.IDs = append(p.IDs, jp.IDs...)
		p.Rejected = append(p.Rejected, jp.Rejected...)
		if len(jp.Origins) > 0 {
			origins = append(origins, jp.Origins...)
		} else {
			origins = append(origins, Origin{Key: jp.Key, RequestedBy: jp.RequestedBy, Names: jp.Names,
				Traceparent: jp.Traceparent, Tracestate: jp.Tracestate, IDs: jp.IDs})
		}
	}
	var one Origin
	one, p.Origins = mergeOrigins(origins)
	p.Key, p.RequestedBy, p.Names, p.Traceparent, p.Tracestate = one.Key, one.RequestedBy, one.Names, one.Traceparent, one.Tracestate
	if p.Kind == "" {
		p.Kind = cmpKind(kind)
	}
	p.IDs = modelid.Dedupe(p.IDs)
	t, err := NewBatchTask(p, a.Options)
	if err != nil {
		log.Error("aggregator could not build a batch", "group", group, "err", err)
		return a.fallback(ts, kind)
	}
	log.Debug("aggregated", "group", group, "jobs", len(ts), "ids", len(p.IDs))
	return t
}

// mergeOrigins keeps who asked for each ID of a merged batch, within which
// name scope, and each request's trace context: one origin (its IDs left
// out) when every job shares them, else each job's.
func mergeOrigins(os []Origin) (one Origin, out []Origin) {
	if len(os) == 0 {
		return Origin{}, nil
	}
	same := true
	for _, o := range os[1:] {
		same = same && o.Key == os[0].Key && o.RequestedBy == os[0].RequestedBy && slices.Equal(o.Names, os[0].Names) &&
			o.Traceparent == os[0].Traceparent && o.Tracestate == os[0].Tracestate
	}
	if same {
		one = os[0]
		one.IDs = nil
		return one, nil
	}
	for _, o := range os {
		if o.Key != "" || o.RequestedBy != "" || len(o.Names) > 0 || o.Traceparent != "" {
			out = append(out, o)
		}
	}
	return Origin{}, out
}

func cmpKind(k modelid.Kind) modelid.Kind {
	if k == "" {
		return modelid.KindModel
	}
	return k
}

// fallback keeps every job's raw payload so the handler dead-letters them.
func (a *Aggregator) fallback(ts []*asynq.Task, k modelid.Kind) *asynq.Task {
	p := Payload{Kind: cmpKind(k)}
	for _, t := range ts {
		p.Rejected = append(p.Rejected, string(t.Payload()))
	}
	t, err := NewBatchTask(p, a.Options)
	if err != nil {
		// Marshalling strings cannot fail; still, never hand Asynq a nil.
		return asynq.NewTask(TypeDeleteBatch, []byte(`{"kind":"model","model_ids":[]}`))
	}
	return t
}
