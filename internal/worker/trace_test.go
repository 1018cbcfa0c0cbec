package worker_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/internal/worker"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

// The caller's span, as a W3C traceparent header names it.
const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// traceWorker starts a worker with the HTTP API, deleting from an account
// that holds the string IDs it returns; tp nil leaves tracing off.
func traceWorker(t *testing.T, tp trace.TracerProvider) (apiClient, []modelid.ID, *asynq.Inspector) {
	fc, all, _ := workertest.Account(10, 2)
	var ids []modelid.ID
	for _, id := range all {
		if id.Type() == modelid.IDString {
			ids = append(ids, id)
		}
	}
	e := workertest.New(t, fc)
	w, _ := e.Start(t, func(c *worker.Config) {
		c.TracerProvider = tp
		c.API = worker.APIConfig{Addr: "127.0.0.1:0", Tokens: []string{apiToken, apiToken2}}
	})
	return apiClient{t: t, base: "http://" + w.APIAddr()}, ids, asynq.NewInspectorFromRedisClient(e.RDB)
}

// postTraced asks for ids with a traceparent header and waits for them to
// be deleted.
func postTraced(t *testing.T, c apiClient, ids []modelid.ID) {
	t.Helper()
	var list []string
	for _, id := range ids {
		list = append(list, `"`+id.String()+`"`)
	}
	req := `{"model_ids":[` + strings.Join(list, ",") + `]}`
	code, body := c.callWith("POST", "/v1/deletions", apiToken, req, map[string]string{
		"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01",
		"tracestate":  "vendor=x1",
	})
	if code != 202 {
		t.Fatalf("POST /v1/deletions: %d %s", code, body)
	}
	for _, id := range ids {
		if st := c.outcome(id.String()); st.State != "deleted" {
			t.Fatalf("%s: %+v, want deleted", id, st)
		}
	}
}

// completedPayloads are the payloads of the batches Asynq keeps as done.
func completedPayloads(t *testing.T, insp *asynq.Inspector) []tasks.Payload {
	t.Helper()
	infos, err := insp.ListCompletedTasks(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	var out []tasks.Payload
	for _, ti := range infos {
		p, err := tasks.DecodePayload(ti.Payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Fatal("no completed batch")
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, k string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// TestTraceFromAPIRequestToQianfanCalls: a request with a traceparent
// header is a server span under the caller's; its enqueue span is stored
// in the task; the batch's span links to it, and the batch's Qianfan calls
// are spans under the batch's.
func TestTraceFromAPIRequestToQianfanCalls(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c, ids, insp := traceWorker(t, tp)
	postTraced(t, c, ids)

	var batch sdktrace.ReadOnlySpan
	workertest.Eventually(t, apiTimeout, "a finished batch span", func() bool {
		for _, s := range exp.GetSpans().Snapshots() {
			if v, _ := attr(s, "qfpurge.result"); s.Name() == "qfpurge.batch" && v.AsString() == "done" {
				batch = s
				return true
			}
		}
		return false
	})
	spans := exp.GetSpans().Snapshots()
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	server, ok := byName["POST /v1/deletions"]
	if !ok {
		t.Fatalf("no server span among %d", len(spans))
	}
	if server.SpanContext().TraceID().String() != callerTrace || server.Parent().SpanID().String() != callerSpan || !server.Parent().IsRemote() {
		t.Errorf("server span %s under %s, want under the caller's %s-%s", server.SpanContext().TraceID(), server.Parent().SpanID(), callerTrace, callerSpan)
	}
	if v, _ := attr(server, "http.response.status_code"); v.AsInt64() != 202 {
		t.Errorf("server span status %v, want 202", v.AsInt64())
	}
	enq, ok := byName["qfpurge.enqueue"]
	if !ok || enq.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Fatalf("no enqueue span under the server span")
	}
	for _, kv := range append(server.Attributes(), enq.Attributes()...) {
		if strings.Contains(kv.Value.Emit(), apiToken) {
			t.Errorf("a span attribute holds the token: %s", kv.Key)
		}
	}

	// The task carries the enqueue span's context and the caller's state.
	want := "00-" + callerTrace + "-" + enq.SpanContext().SpanID().String() + "-01"
	for _, p := range completedPayloads(t, insp) {
		if p.Traceparent != want || p.Tracestate != "vendor=x1" {
			t.Errorf("payload trace context %q %q, want %q vendor=x1", p.Traceparent, p.Tracestate, want)
		}
	}

	// The batch is a root span of its own trace, linked to the request's.
	if batch.Parent().IsValid() {
		t.Errorf("batch span has a parent %v, want a root linked to the request", batch.Parent())
	}
	if len(batch.Links()) != 1 || batch.Links()[0].SpanContext.SpanID() != enq.SpanContext().SpanID() ||
		batch.Links()[0].SpanContext.TraceID().String() != callerTrace {
		t.Fatalf("batch links %+v, want one to the enqueue span", batch.Links())
	}
	for k, want := range map[string]int64{"qfpurge.ids": int64(len(ids)), "qfpurge.outcome.deleted": int64(len(ids))} {
		if v, _ := attr(batch, k); v.AsInt64() != want {
			t.Errorf("batch span %s = %d, want %d", k, v.AsInt64(), want)
		}
	}
	if v, _ := attr(batch, "qfpurge.kind"); v.AsString() != "model" {
		t.Errorf("batch span kind %q", v.AsString())
	}

	// Its Qianfan calls are its children: the batchDelete among them.
	var deletes int
	for _, s := range spans {
		if !strings.HasPrefix(s.Name(), "qianfan ") || s.Parent().SpanID() != batch.SpanContext().SpanID() {
			continue
		}
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s is a %v span", s.Name(), s.SpanKind())
		}
		for _, kv := range s.Attributes() {
			if v := kv.Value.Emit(); strings.Contains(v, "bce-auth") || strings.Contains(v, "Secret") {
				t.Errorf("%s: attribute %s holds a signature or secret", s.Name(), kv.Key)
			}
		}
		if p, _ := attr(s, "url.path"); strings.HasSuffix(p.AsString(), "/model/batchDelete") {
			deletes++
			st, _ := attr(s, "http.response.status_code")
			n, _ := attr(s, "qianfan.ids")
			a, _ := attr(s, "qianfan.attempt")
			if st.AsInt64() != 200 || n.AsInt64() != int64(len(ids)) || a.AsInt64() != 1 {
				t.Errorf("batchDelete span: status %d, ids %d, attempt %d", st.AsInt64(), n.AsInt64(), a.AsInt64())
			}
		}
	}
	if deletes != 1 {
		t.Errorf("%d batchDelete spans under the batch span, want 1", deletes)
	}
}

// TestTracingOff: without a provider or an OTLP endpoint, a traceparent
// header is not read and no task carries a trace context.
func TestTracingOff(t *testing.T) {
	t.Parallel()
	c, ids, insp := traceWorker(t, nil)
	postTraced(t, c, ids)
	for _, p := range completedPayloads(t, insp) {
		if p.Traceparent != "" || p.Tracestate != "" {
			t.Errorf("tracing off, the payload carries %q %q", p.Traceparent, p.Tracestate)
		}
	}
}

// callWith is call with extra request headers.
func (c apiClient) callWith(method, path, token, body string, hdr map[string]string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestTracesReachTheCollector: with --otlp-endpoint the worker exports its
// spans over OTLP/HTTP, and Shutdown sends what is still buffered.
func TestTracesReachTheCollector(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		names = map[string]bool{}
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
					names[s.Name] = true
				}
			}
		}
	}))
	defer collector.Close()
	fc, all, _ := workertest.Account(5, 0)
	e := workertest.New(t, fc)
	w, _ := e.Start(t, func(c *worker.Config) {
		c.OTLPEndpoint = collector.URL
		c.API = worker.APIConfig{Addr: "127.0.0.1:0", Tokens: []string{apiToken, apiToken2}}
	})
	c := apiClient{t: t, base: "http://" + w.APIAddr()}
	var ids []modelid.ID
	for _, id := range all {
		if id.Type() == modelid.IDString {
			ids = append(ids, id)
		}
	}
	postTraced(t, c, ids)
	// The batch's span ends right after its outcomes are written.
	workertest.Eventually(t, apiTimeout, "the batch's execution to end", func() bool {
		infos, err := asynq.NewInspectorFromRedisClient(e.RDB).ListCompletedTasks(asynqlayout.Queue)
		return err == nil && len(infos) > 0
	})
	w.Shutdown()
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"POST /v1/deletions", "qfpurge.enqueue", "qfpurge.batch", "qianfan " + qianfan.PathBatchDeleteModels} {
		if !names[want] {
			t.Errorf("the collector has no %q span: %v", want, names)
		}
	}
}
