// Package tracing is qfpurge's OpenTelemetry plumbing: an OTLP/HTTP trace
// exporter that runs only when an endpoint is configured, and the W3C trace
// context a task carries from the request that asked for it to the batch
// that deletes it.
//
// Tracing is off by default: without an endpoint (--otlp-endpoint,
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) Setup
// returns a nil *Provider, whose TracerProvider is a no-op: no exporter, no
// goroutine, and spans that record nothing.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Scope is the instrumentation scope every qfpurge tracer is named by.
const Scope = "github.com/qfpurge/qfpurge"

// The standard environment variables Setup honours (the exporter reads
// the other OTEL_EXPORTER_OTLP_* itself: headers, timeout, compression,
// certificates, protocol http/protobuf or http/json).
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvHeaders        = "OTEL_EXPORTER_OTLP_HEADERS"
	EnvTracesHeaders  = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	EnvServiceName    = "OTEL_SERVICE_NAME"
	envSDKDisabled    = "OTEL_SDK_DISABLED"
	envTracesExporter = "OTEL_TRACES_EXPORTER"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// ShutdownTimeout bounds the flush of the spans still buffered at exit.
const ShutdownTimeout = 5 * time.Second

// Config configures Setup.
type Config struct {
	// Endpoint is the collector's OTLP/HTTP base URL, as
	// OTEL_EXPORTER_OTLP_ENDPOINT (http://collector:4318; spans go to its
	// /v1/traces). It wins over the environment; empty leaves it to the
	// environment.
	Endpoint string
	// ServiceName is service.name unless OTEL_SERVICE_NAME (or
	// OTEL_RESOURCE_ATTRIBUTES) says otherwise. Defaults to "qfpurge".
	ServiceName string
	// Version is service.version.
	Version string
	// Getenv defaults to os.Getenv. (The exporter reads its other
	// variables, such as the headers, from the process environment.)
	Getenv func(string) string
	// Logger, when set, receives the exporter's errors (a collector out of
	// reach) instead of the standard logger: OpenTelemetry's error handler
	// is the process's, so only a program's main sets it.
	Logger *slog.Logger
}

func (c Config) getenv(k string) string {
	if c.Getenv == nil {
		return os.Getenv(k)
	}
	return c.Getenv(k)
}

// Enabled reports whether c or the environment names an OTLP endpoint, and
// the SDK is not turned off (OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none).
func (c Config) Enabled() bool {
	if strings.EqualFold(c.getenv(envSDKDisabled), "true") || strings.EqualFold(c.getenv(envTracesExporter), "none") {
		return false
	}
	return c.Endpoint != "" || c.getenv(EnvEndpoint) != "" || c.getenv(EnvTracesEndpoint) != ""
}

// check refuses settings qfpurge would otherwise ignore in silence.
func (c Config) check() error {
	if e := c.getenv(envTracesExporter); e != "" && !strings.EqualFold(e, "otlp") {
		return fmt.Errorf("%s=%q: qfpurge exports traces over OTLP only (otlp or none)", envTracesExporter, e)
	}
	for _, k := range []string{envProtocol, envTracesProtocol} {
		if p := c.getenv(k); p != "" && p != "http/protobuf" && p != "http/json" {
			return fmt.Errorf("%s=%q: qfpurge sends OTLP over HTTP (http/protobuf or http/json; a collector listens on port 4318 for it)", k, p)
		}
	}
	for _, e := range []string{c.Endpoint, c.getenv(EnvTracesEndpoint), c.getenv(EnvEndpoint)} {
		if e == "" {
			continue
		}
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("the OTLP endpoint must be a URL such as http://collector:4318 (not shown: it may hold a secret)")
		}
	}
	return nil
}

// Provider is a running trace pipeline. A nil *Provider is tracing off.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Setup starts an OTLP/HTTP exporter when c.Enabled, else returns nil, nil.
// No connection is made here: spans are sent in batches, in the background.
func Setup(ctx context.Context, c Config) (*Provider, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	// The endpoint as Getenv sees it (the exporter would read the process's
	// environment itself): the flag, the traces URL as is, or the base URL.
	var opts []otlptracehttp.Option
	switch {
	case c.Endpoint != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(c.Endpoint, "/")+"/v1/traces"))
	case c.getenv(EnvTracesEndpoint) != "":
		opts = append(opts, otlptracehttp.WithEndpointURL(c.getenv(EnvTracesEndpoint)))
	default:
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(c.getenv(EnvEndpoint), "/")+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		// The exporter's errors may quote the endpoint; keep them out.
		return nil, errors.New("cannot set up the OTLP exporter; check the OTLP endpoint and OTEL_EXPORTER_OTLP_* settings")
	}
	name := c.ServiceName
	if name == "" {
		name = "qfpurge"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if c.Version != "" {
		attrs = append(attrs, attribute.String("service.version", c.Version))
	}
	// Later detectors win: OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
	// over qfpurge's own name.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && res == nil {
		res = resource.NewSchemaless(attrs...)
	}
	if c.Logger != nil {
		log := c.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: could not send spans", "err", err) }))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{tp: tp}, nil
}

// NewProvider wraps a provider the caller built (tests: an in-memory
// exporter); Shutdown then shuts it down.
func NewProvider(tp *sdktrace.TracerProvider) *Provider { return &Provider{tp: tp} }

// TracerProvider is the provider to start spans with: a no-op when p is nil.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return noop.NewTracerProvider()
	}
	return p.tp
}

// Shutdown sends the spans still buffered, waiting at most ShutdownTimeout
// (or ctx), and stops the exporter. Safe on a nil Provider.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
	defer cancel()
	return p.tp.Shutdown(ctx)
}

// Tracer returns qfpurge's tracer of tp; a nil tp is a no-op.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(Scope)
}

// w3c is the one propagation format: W3C trace context, whatever the
// process's global propagator is.
var w3c = propagation.TraceContext{}

// Inject returns the W3C traceparent and tracestate of ctx's span; empty
// when ctx holds no valid span context (tracing off, nothing upstream).
func Inject(ctx context.Context) (traceparent, tracestate string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	c := propagation.MapCarrier{}
	w3c.Inject(ctx, c)
	return c["traceparent"], c["tracestate"]
}

// Parse reads a traceparent and tracestate back into a remote span
// context; ok is false when traceparent is empty or malformed.
func Parse(traceparent, tracestate string) (sc trace.SpanContext, ok bool) {
	if traceparent == "" {
		return sc, false
	}
	c := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		c["tracestate"] = tracestate
	}
	sc = trace.SpanContextFromContext(w3c.Extract(context.Background(), c))
	return sc, sc.IsValid()
}

// Extract returns ctx with the remote span context of the W3C traceparent
// and tracestate headers of h, when they hold a valid one.
func Extract(ctx context.Context, h propagation.TextMapCarrier) context.Context {
	return w3c.Extract(ctx, h)
}
