package qianfan

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

func spanAttrs(s sdktrace.ReadOnlySpan) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

// TestAttemptSpans: each attempt of a call under a span is a client span
// with the endpoint, its number, the HTTP status and Qianfan's code and
// log_id; nothing of the signature, the body or the IDs; and no trace
// header goes to Qianfan. A call without a span makes none.
func TestAttemptSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	var calls atomic.Int32
	var leaked atomic.Bool
	b := setup(t, qianfantest.Config{Invalid: qianfantest.InvalidIDs("am-bad")}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("traceparent") != "" {
				leaked.Store(true)
			}
			if calls.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}, WithTracerProvider(tp))

	if _, err := b.client.BatchDeleteModels(context.Background(), StringIDs{"am-bad"}); err == nil {
		t.Fatal("am-bad deleted")
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("a call without a span made %d spans", n)
	}
	calls.Store(0)
	ctx, batch := tp.Tracer("test").Start(context.Background(), "batch")
	_, err := b.client.BatchDeleteModels(ctx, StringIDs{"am-bad", "am-x"})
	batch.End()
	if err == nil {
		t.Fatal("am-bad deleted")
	}
	if leaked.Load() {
		t.Error("a traceparent header was sent to Qianfan")
	}
	var attempts []map[string]attribute.Value
	for _, s := range exp.GetSpans().Snapshots() {
		if s.Name() == "batch" {
			continue
		}
		if s.Name() != "qianfan "+PathBatchDeleteModels || s.Parent().SpanID() != batch.SpanContext().SpanID() {
			t.Errorf("span %q under %v", s.Name(), s.Parent().SpanID())
		}
		a := spanAttrs(s)
		for k, v := range a {
			if e := v.Emit(); strings.Contains(e, testSecret) || strings.Contains(e, "bce-auth") || strings.Contains(e, "am-bad") {
				t.Errorf("attribute %s = %q", k, e)
			}
		}
		attempts = append(attempts, a)
	}
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2 (503, then 500001)", len(attempts))
	}
	first, second := attempts[0], attempts[1]
	if first["qianfan.attempt"].AsInt64() != 1 || first["http.response.status_code"].AsInt64() != 503 ||
		first["qianfan.error_class"].AsString() != "transient" {
		t.Errorf("first attempt %v", first)
	}
	if second["qianfan.attempt"].AsInt64() != 2 || second["http.response.status_code"].AsInt64() != 200 ||
		second["qianfan.error_code"].AsString() != "500001" || second["qianfan.log_id"].AsString() == "" ||
		second["qianfan.ids"].AsInt64() != 2 || second["url.path"].AsString() != PathBatchDeleteModels {
		t.Errorf("second attempt %v", second)
	}
}
