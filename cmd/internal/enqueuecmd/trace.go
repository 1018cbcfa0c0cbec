package enqueuecmd

import (
	"context"
	"os"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/qfpurge/qfpurge/internal/tracing"
)

// startTrace traces the command when OTEL_EXPORTER_OTLP_ENDPOINT (or
// _TRACES_ENDPOINT) is set: a root span, or the child of the W3C context in
// TRACEPARENT and TRACESTATE (a CI job's), whose context every task of the
// request carries. end ends the span and sends it, waiting at most
// tracing.ShutdownTimeout. Off, it changes nothing and tp is nil.
func startTrace(ctx context.Context, getenv func(string) string) (_ context.Context, end func(error), tp trace.TracerProvider, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	prov, err := tracing.Setup(ctx, tracing.Config{Getenv: getenv})
	if err != nil || prov == nil {
		return ctx, func(error) {}, nil, err
	}
	tp = prov.TracerProvider()
	if tpv := getenv("TRACEPARENT"); tpv != "" {
		ctx = tracing.Extract(ctx, propagation.MapCarrier{"traceparent": tpv, "tracestate": getenv("TRACESTATE")})
	}
	ctx, span := tracing.Tracer(tp).Start(ctx, "qfpurge enqueue", trace.WithSpanKind(trace.SpanKindProducer))
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		_ = prov.Shutdown(context.WithoutCancel(ctx))
	}, tp, nil
}
