package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/producer"
)

func TestEnqueueAndStream(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	p, err := producer.New(rdb, producer.Config{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var batches []producer.Batch
	rc, err := p.Enqueue(ctx, producer.Request{Kind: producer.KindModel,
		IDs:     []producer.ID{producer.IntID(585), producer.StringID("am-x"), producer.IntID(585), producer.IntID(586)},
		OnBatch: func(b producer.Batch) { batches = append(batches, b) }})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Kind != producer.KindModel || rc.IDs != 3 || rc.IntIDs != 2 || rc.StringIDs != 1 || rc.Duplicates != 1 || rc.Tasks != len(batches) || len(batches) == 0 ||
		!strings.HasPrefix(rc.Key, "req-") || !rc.KeyGenerated {
		t.Errorf("receipt %+v with %d batches (a request given no key gets one)", rc, len(batches))
	}

	_, err = p.Enqueue(ctx, producer.Request{Kind: producer.KindModel, IDs: []producer.ID{producer.IntID(1), producer.StringID("amv-v")}})
	var inv *producer.InvalidIDsError
	if !errors.As(err, &inv) || len(inv.Invalid) != 1 || inv.Invalid[0].Index != 1 || !strings.Contains(err.Error(), "amv-v") {
		t.Fatalf("a version ID in a model request: %v (%+v); want an InvalidIDsError naming it", err, inv)
	}
	if _, err := p.Enqueue(ctx, producer.Request{Kind: producer.KindModel}); !errors.Is(err, producer.ErrNoIDs) {
		t.Errorf("empty request: %v, want ErrNoIDs", err)
	}

	ids, err := producer.ParseIDs(strings.NewReader("7\nam-y\n"), producer.KindModel)
	if err != nil || len(ids) != 2 || ids[0].String() != "7" || ids[1].Type() != "string" {
		t.Fatalf("ParseIDs = %v, %v", ids, err)
	}
	if _, err := producer.ParseIDs(strings.NewReader("7\nnope\n"), producer.KindModel); !errors.As(err, &inv) || !inv.Line || inv.Invalid[0].Index != 2 {
		t.Errorf("ParseIDs of a bad line: %v; want an InvalidIDsError at line 2", err)
	}
	var d producer.Digest
	for _, id := range ids {
		d.Add(id)
	}
	req := producer.Request{Kind: producer.KindModel, Key: "k1"}
	req.Digest = d.Sum(req)
	s, err := p.Stream(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := s.Add(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if rc, err := s.Close(ctx); err != nil || rc.IDs != 2 || rc.Key != "k1" || rc.KeyGenerated {
		t.Fatalf("stream: %+v, %v", rc, err)
	}
	// The same key with other IDs is refused.
	_, err = p.Enqueue(ctx, producer.Request{Kind: producer.KindModel, Key: "k1", IDs: []producer.ID{producer.IntID(8)}})
	if !errors.Is(err, producer.ErrKeyConflict) {
		t.Errorf("reused key: %v, want ErrKeyConflict", err)
	}
}

func TestIDJSON(t *testing.T) {
	in := []producer.ID{producer.IntID(585), producer.StringID("am-x")}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `[585,"am-x"]` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var out []producer.ID
	if err := json.Unmarshal(b, &out); err != nil || len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("Unmarshal = %v, %v", out, err)
	}
	if n, ok := out[0].Int(); !ok || n != 585 {
		t.Errorf("Int = %d, %v", n, ok)
	}
}
