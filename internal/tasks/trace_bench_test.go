package tasks

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hibiken/asynq"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// BenchmarkBatchSpan is what tracing adds to one execution of a batch of
// 100 IDs from one traced request: off (the default, a no-op tracer) and
// on (an SDK provider without an exporter).
func BenchmarkBatchSpan(b *testing.B) {
	p := Payload{Kind: modelid.KindModel, Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	for i := range 100 {
		p.IDs = append(p.IDs, modelid.IntID(int64(i+1)))
	}
	raw, _ := json.Marshal(p)
	task := asynq.NewTask(TypeDeleteBatch, raw)
	outs := make([]ledger.Outcome, 100)
	for i := range outs {
		outs[i].State = ledger.StateDeleted
	}
	for _, tt := range []struct {
		name string
		cfg  HandlerConfig
	}{
		{"off", HandlerConfig{}},
		{"on", HandlerConfig{TracerProvider: sdktrace.NewTracerProvider()}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			h := NewHandler(nil, nil, nil, nil, tt.cfg)
			b.ReportAllocs()
			for b.Loop() {
				ctx, bs := h.startSpan(context.Background(), task, attempt{taskID: "t"})
				traceOutcomes(ctx, outs)
				traceResult(ctx, Result{LogID: "1"})
				bs.end(nil)
			}
		})
	}
}
