package tasks

import (
	"encoding/json"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

const (
	tpA = "00-11111111111111111111111111111111-aaaaaaaaaaaaaaaa-01"
	tpB = "00-22222222222222222222222222222222-bbbbbbbbbbbbbbbb-01"
)

func job(t *testing.T, p Payload) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(TypeDelete, b)
}

// TestMergedBatchLinksEachRequest: the aggregator keeps each request's
// trace context with its IDs, and the batch links once to each request's
// span, counting its IDs; a split batch links only to the requests whose
// IDs it holds.
func TestMergedBatchLinksEachRequest(t *testing.T) {
	a := &Aggregator{}
	id := modelid.IntID
	out := a.Aggregate("model/int/00", []*asynq.Task{
		job(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{id(1), id(2)}, Traceparent: tpA, Tracestate: "v=1"}),
		job(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{id(3)}, Traceparent: tpB}),
		job(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{id(4)}, Traceparent: tpA, Tracestate: "v=1"}),
		job(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{id(5)}}), // not traced
	})
	p, err := DecodePayload(out.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if p.Traceparent != "" || len(p.Origins) != 3 {
		t.Fatalf("merged payload %+v, want three traced origins", p)
	}
	links := originLinks(p)
	if len(links) != 2 {
		t.Fatalf("%d links, want 2: %+v", len(links), links)
	}
	want := map[string]int64{"aaaaaaaaaaaaaaaa": 3, "bbbbbbbbbbbbbbbb": 1}
	for _, l := range links {
		if !l.SpanContext.IsRemote() || !l.SpanContext.IsSampled() {
			t.Errorf("link %v is not a remote sampled span context", l.SpanContext)
		}
		if n := l.Attributes[0].Value.AsInt64(); n != want[l.SpanContext.SpanID().String()] {
			t.Errorf("link to %s counts %d IDs, want %d", l.SpanContext.SpanID(), n, want[l.SpanContext.SpanID().String()])
		}
		if l.SpanContext.SpanID().String() == "aaaaaaaaaaaaaaaa" && l.SpanContext.TraceState().Get("v") != "1" {
			t.Errorf("tracestate lost: %v", l.SpanContext.TraceState())
		}
	}
	// A batch split from it with request B's ID only.
	p.IDs = []modelid.ID{id(3)}
	if links := originLinks(p); len(links) != 1 || links[0].SpanContext.SpanID().String() != "bbbbbbbbbbbbbbbb" {
		t.Errorf("split batch links %+v, want only request B's", links)
	}

	// Jobs of one traced request stay one origin, without Origins.
	out = a.Aggregate("model/int/00", []*asynq.Task{
		job(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{id(1)}, Traceparent: tpA, Key: "k"}),
		job(t, Payload{Kind: modelid.KindModel, IDs: []modelid.ID{id(2)}, Traceparent: tpA, Key: "k"}),
	})
	if p, _ = DecodePayload(out.Payload()); p.Traceparent != tpA || p.Key != "k" || p.Origins != nil {
		t.Errorf("one request's jobs merged into %+v", p)
	}
	if links := originLinks(p); len(links) != 1 || links[0].Attributes[0].Value.AsInt64() != 2 {
		t.Errorf("links %+v, want one for 2 IDs", links)
	}
	// A malformed traceparent is no link.
	p.Traceparent = "00-zz"
	if links := originLinks(p); len(links) != 0 {
		t.Errorf("malformed traceparent linked: %+v", links)
	}
}
