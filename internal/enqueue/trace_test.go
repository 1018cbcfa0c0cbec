package enqueue_test

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// queued returns the payload of every task in the queue, ready or waiting
// in a group.
func queued(t *testing.T, rdb redis.UniversalClient) []tasks.Payload {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	infos, err := insp.ListPendingTasks(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := insp.Groups(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		more, err := insp.ListAggregatingTasks(asynqlayout.Queue, g.Group)
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, more...)
	}
	var out []tasks.Payload
	for _, ti := range infos {
		p, err := tasks.DecodePayload(ti.Payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func w3c(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

var mixed = []modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.IntID(3), modelid.StringID("am-a")}

// TestEnqueueCarriesItsSpan: Enqueue's span is a child of the caller's,
// and every task of the request, ready or grouped, carries its context.
func TestEnqueueCarriesItsSpan(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	p := newProducer(t, rdb, enqueue.Config{BatchSize: 2, TracerProvider: tp})
	ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: mixed, Key: "k1", RequestedBy: "ci"}); err != nil {
		t.Fatal(err)
	}
	caller.End()
	spans := exp.GetSpans().Snapshots()
	if len(spans) != 2 || spans[0].Name() != "qfpurge.enqueue" {
		t.Fatalf("spans %v, want qfpurge.enqueue and caller", exp.GetSpans())
	}
	enq := spans[0]
	if enq.Parent().SpanID() != caller.SpanContext().SpanID() || enq.SpanKind() != trace.SpanKindProducer {
		t.Errorf("enqueue span: parent %v kind %v", enq.Parent().SpanID(), enq.SpanKind())
	}
	got := map[string]int64{}
	for _, kv := range enq.Attributes() {
		if kv.Value.Type().String() == "INT64" {
			got[string(kv.Key)] = kv.Value.AsInt64()
		}
	}
	if got["qfpurge.ids"] != 4 || got["qfpurge.tasks"] != 3 {
		t.Errorf("enqueue span counts %v, want 4 IDs in 3 tasks", got)
	}
	ps := queued(t, rdb)
	if len(ps) != 3 {
		t.Fatalf("%d tasks, want 3", len(ps))
	}
	for _, pl := range ps {
		if pl.Traceparent != w3c(enq.SpanContext()) || pl.Tracestate != "" {
			t.Errorf("task with %v carries %q %q, want %q", pl.IDs, pl.Traceparent, pl.Tracestate, w3c(enq.SpanContext()))
		}
	}
}

// TestStreamCarriesTheCallersSpan: a Stream's tasks carry the span current
// at its first Add.
func TestStreamCarriesTheCallersSpan(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	tp := sdktrace.NewTracerProvider()
	p := newProducer(t, rdb, enqueue.Config{BatchSize: 2})
	ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
	defer caller.End()
	s, err := p.Stream(enqueue.Request{Kind: modelid.KindModel})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range mixed {
		if err := s.Add(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pl := range queued(t, rdb) {
		if pl.Traceparent != w3c(caller.SpanContext()) {
			t.Errorf("task with %v carries %q, want the caller's %q", pl.IDs, pl.Traceparent, w3c(caller.SpanContext()))
		}
	}
}

// TestNoTraceNoContext: without a span (tracing off, the global no-op
// provider) no task carries a trace context.
func TestNoTraceNoContext(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	p := newProducer(t, rdb, enqueue.Config{BatchSize: 2})
	if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: mixed}); err != nil {
		t.Fatal(err)
	}
	for _, pl := range queued(t, rdb) {
		if pl.Traceparent != "" || pl.Tracestate != "" {
			t.Errorf("task with %v carries %q %q", pl.IDs, pl.Traceparent, pl.Tracestate)
		}
	}
}
