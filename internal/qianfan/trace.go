package qianfan

import (
	"context"
	"errors"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// traceScope names the client's tracer: package tracing's Scope, written
// out so the client does not import the exporter with it.
const traceScope = "github.com/qfpurge/qfpurge"

// WithTracerProvider traces every HTTP attempt of a call made under a
// traced context (a batch's span) as a client span: the endpoint, the
// attempt's number, the HTTP status, Qianfan's error code and log_id.
// Neither the body, the headers (Authorization holds the signature) nor
// the IDs are recorded, and no trace header is sent to Qianfan. Calls made
// without a span in their context are not traced. Defaults to none.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *Client) {
		c.tr = nil
		if tp != nil {
			c.tr = tp.Tracer(traceScope)
		}
	}
}

// startAttempt starts attempt n's span, or returns a nil span.
func (c *Client) startAttempt(ctx context.Context, ep endpoint, n, ids int) (context.Context, trace.Span) {
	if c.tr == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", "POST"),
		attribute.String("server.address", c.base.Hostname()),
		attribute.String("url.path", c.base.Path+ep.path),
		attribute.Int("qianfan.attempt", n),
		attribute.Bool("qianfan.write", ep.write),
	}
	if ep.action != "" {
		attrs = append(attrs, attribute.String("qianfan.action", ep.action))
	}
	if ids > 0 {
		attrs = append(attrs, attribute.Int("qianfan.ids", ids))
	}
	return c.tr.Start(ctx, "qianfan "+ep.String(), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// traceStatus notes the HTTP status of the attempt under ctx.
func traceStatus(ctx context.Context, status int) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
}

// endAttempt ends an attempt's span with Qianfan's answer.
func endAttempt(span trace.Span, ep endpoint, logID string, e *Error, sent bool) {
	if span == nil {
		return
	}
	if e == nil {
		if logID != "" {
			span.SetAttributes(attribute.String("qianfan.log_id", logID))
		}
		span.End()
		return
	}
	attrs := []attribute.KeyValue{attribute.String("qianfan.error_class", e.class().String())}
	if e.HTTPStatus != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", e.HTTPStatus))
	}
	if code := e.code(); code != "" {
		attrs = append(attrs, attribute.String("qianfan.error_code", code))
	}
	if e.LogID != "" {
		attrs = append(attrs, attribute.String("qianfan.log_id", e.LogID))
	}
	if ep.write && ((sent && e.HTTPStatus == 0) || e.unparsed) {
		attrs = append(attrs, attribute.Bool("qianfan.answer_lost", true))
	}
	typ := e.code()
	switch {
	case typ != "":
	case e.HTTPStatus != 0:
		typ = "http_" + strconv.Itoa(e.HTTPStatus)
	case errors.Is(e.Err, context.DeadlineExceeded):
		typ = "timeout"
	default:
		typ = "transport"
	}
	attrs = append(attrs, attribute.String("error.type", typ))
	span.SetAttributes(attrs...)
	span.SetStatus(codes.Error, e.Message)
	span.End()
}
