package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/qfpurge/qfpurge/internal/tracing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestOffByDefault: without an endpoint there is no provider, and its
// tracer records nothing.
func TestOffByDefault(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    tracing.Config
		on   bool
	}{
		{"nothing", tracing.Config{Getenv: env(nil)}, false},
		{"flag", tracing.Config{Endpoint: "http://127.0.0.1:4318", Getenv: env(nil)}, true},
		{"env", tracing.Config{Getenv: env(map[string]string{tracing.EnvEndpoint: "http://c:4318"})}, true},
		{"traces env", tracing.Config{Getenv: env(map[string]string{tracing.EnvTracesEndpoint: "http://c:4318/v1/traces"})}, true},
		{"sdk disabled", tracing.Config{Getenv: env(map[string]string{tracing.EnvEndpoint: "http://c:4318", "OTEL_SDK_DISABLED": "true"})}, false},
		{"exporter none", tracing.Config{Endpoint: "http://c:4318", Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "none"})}, false},
	} {
		if got := tt.c.Enabled(); got != tt.on {
			t.Errorf("%s: Enabled %v, want %v", tt.name, got, tt.on)
		}
	}
	p, err := tracing.Setup(context.Background(), tracing.Config{Getenv: env(nil)})
	if err != nil || p != nil {
		t.Fatalf("Setup without an endpoint: %v, %v; want nil, nil", p, err)
	}
	_, span := tracing.Tracer(p.TracerProvider()).Start(context.Background(), "x")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("the off provider records")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestRefusesWhatItCannotDo: gRPC and other exporters are refused, not
// ignored; a bad endpoint is refused without being echoed.
func TestRefusesWhatItCannotDo(t *testing.T) {
	for _, c := range []tracing.Config{
		{Endpoint: "http://c:4317", Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})},
		{Endpoint: "http://c:4318", Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"})},
		{Endpoint: "collector:4318?token=s3cret", Getenv: env(nil)},
	} {
		p, err := tracing.Setup(context.Background(), c)
		if err == nil {
			_ = p.Shutdown(context.Background())
			t.Errorf("%+v accepted", c)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error echoes the endpoint: %v", err)
		}
	}
}

// TestExportsOverOTLPHTTP: spans reach a collector's /v1/traces as an OTLP
// protobuf request, with OTEL_SERVICE_NAME as service.name and the
// OTEL_EXPORTER_OTLP_HEADERS sent; Shutdown flushes them.
func TestExportsOverOTLPHTTP(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "qfpurge-test")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer collector-token")
	var (
		mu   sync.Mutex
		reqs []*collectortrace.ExportTraceServiceRequest
		auth []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("collector got %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("not an OTLP request: %v", err)
		}
		mu.Lock()
		reqs = append(reqs, &req)
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("collector at %s, want loopback", srv.URL)
	}
	p, err := tracing.Setup(context.Background(), tracing.Config{Endpoint: srv.URL + "/"})
	if err != nil || p == nil {
		t.Fatalf("Setup: %v, %v", p, err)
	}
	ctx, parent := tracing.Tracer(p.TracerProvider()).Start(context.Background(), "qfpurge.batch")
	_, child := tracing.Tracer(p.TracerProvider()).Start(ctx, "qianfan /x")
	child.End()
	parent.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) == 0 {
		t.Fatal("the collector got nothing")
	}
	names := map[string]bool{}
	service := ""
	for _, r := range reqs {
		for _, rs := range r.ResourceSpans {
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					service = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				if ss.Scope.Name != tracing.Scope {
					t.Errorf("scope %q", ss.Scope.Name)
				}
				for _, s := range ss.Spans {
					names[s.Name] = true
				}
			}
		}
	}
	if service != "qfpurge-test" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", service)
	}
	if !names["qfpurge.batch"] || !names["qianfan /x"] {
		t.Errorf("spans %v", names)
	}
	if auth[0] != "Bearer collector-token" {
		t.Errorf("Authorization %q: OTEL_EXPORTER_OTLP_HEADERS not sent", auth[0])
	}
}

// TestInjectParse: a span's context survives the trip through a task.
func TestInjectParse(t *testing.T) {
	if tp, ts := tracing.Inject(context.Background()); tp != "" || ts != "" {
		t.Errorf("no span, yet %q %q", tp, ts)
	}
	ctx, span := sdktrace.NewTracerProvider().Tracer("t").Start(context.Background(), "s")
	tp, _ := tracing.Inject(ctx)
	if back, ok := tracing.Parse(tp, ""); !ok || back.SpanID() != span.SpanContext().SpanID() || back.TraceID() != span.SpanContext().TraceID() {
		t.Errorf("round trip of %q gave %v", tp, back)
	}
	sc, ok := tracing.Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=b,c=d")
	if !ok || !sc.IsRemote() || sc.TraceState().Get("c") != "d" {
		t.Fatalf("Parse: %v %v", sc, ok)
	}
	if _, ok := tracing.Parse("", ""); ok {
		t.Error("empty traceparent parsed")
	}
	if _, ok := tracing.Parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""); ok {
		t.Error("all-zero trace ID parsed")
	}
}
