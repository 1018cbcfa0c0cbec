package httpapi

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/qfpurge/qfpurge/internal/tracing"
)

// startSpan starts a request's server span, the child of the caller's
// span when a traceparent header names one; nil without a tracer.
func (a *API) startSpan(r *http.Request) (*http.Request, trace.Span) {
	if a.tr == nil {
		return r, nil
	}
	ctx := tracing.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := a.tr.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method)))
	return r.WithContext(ctx), span
}

// endSpan names the span after the route the mux chose and ends it with
// the status and the token's name: never a header (they hold the token)
// nor the body.
func endSpan(span trace.Span, r *http.Request, sw *statusWriter) {
	if span == nil {
		return
	}
	if r.Pattern != "" && r.Pattern != "/" {
		route := r.Pattern
		if _, path, ok := strings.Cut(route, " "); ok {
			route = path
		}
		span.SetName(r.Method + " " + route)
		span.SetAttributes(attribute.String("http.route", route))
	}
	span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
	if sw.token != "" {
		span.SetAttributes(attribute.String("qfpurge.token", sw.token))
	}
	if sw.status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(sw.status))
	}
	span.End()
}
