package enqueuecmd

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// TestEnqueueTraced: with an OTLP endpoint, the command is a span under
// TRACEPARENT, sent to the collector before it exits, and each task
// carries its context; without one, tasks carry none.
func TestEnqueueTraced(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var (
		mu    sync.Mutex
		spans = map[string]string{} // span ID (hex) -> name
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			t.Errorf("collector got %s %s", r.Method, r.URL.Path)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans[hex.EncodeToString(s.SpanId)] = s.Name + " in " + hex.EncodeToString(s.TraceId) + " under " + hex.EncodeToString(s.ParentSpanId)
				}
			}
		}
	}))
	defer collector.Close()
	srv := redistest.Start(t)
	insp := asynq.NewInspectorFromRedisClient(srv.Client(t))

	for _, traced := range []bool{true, false} {
		env := map[string]string{"REDIS_URL": srv.URL(), "TRACEPARENT": parent}
		if traced {
			env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.URL
		}
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{"--batch-size", "2", "1", "2", "3"}, func(k string) string { return env[k] },
			strings.NewReader(""), &out, &errb); err != nil {
			t.Fatalf("enqueue: %v\n%s", err, errb.String())
		}
		infos, err := insp.ListPendingTasks(asynqlayout.Queue)
		if err != nil {
			t.Fatal(err)
		}
		groups, _ := insp.Groups(asynqlayout.Queue)
		for _, g := range groups {
			more, _ := insp.ListAggregatingTasks(asynqlayout.Queue, g.Group)
			infos = append(infos, more...)
		}
		if len(infos) != 2 {
			t.Fatalf("%d tasks, want 2", len(infos))
		}
		for _, ti := range infos {
			p, err := tasks.DecodePayload(ti.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !traced {
				if p.Traceparent != "" {
					t.Errorf("tracing off, the task carries %q", p.Traceparent)
				}
				continue
			}
			f := strings.Split(p.Traceparent, "-")
			if len(f) != 4 || f[1] != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Fatalf("task carries %q, want a span of TRACEPARENT's trace", p.Traceparent)
			}
			mu.Lock()
			got := spans[f[2]]
			mu.Unlock()
			if got != "qfpurge enqueue in 4bf92f3577b34da6a3ce929d0e0e4736 under 00f067aa0ba902b7" {
				t.Errorf("the collector has %q for the task's span %s", got, f[2])
			}
		}
		if err := srv.Client(t).FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	}
}
