package enqueue_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// TestReadRequest: a keyed request of 250 IDs (three batches) enqueued
// twice is recorded once; its IDs are counted by their ledger state, an
// earlier outcome of another request counting pending unless it is a
// deletion; a request given no key is recorded under the key generated
// for it.
func TestReadRequest(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	l := ledger.New(rdb, ledger.Config{})
	var ids []modelid.ID
	for i := range 250 {
		ids = append(ids, modelid.IntID(int64(i+1)))
	}
	// Outcomes of an earlier request, written before this one is made.
	old := time.Now().Add(-time.Hour)
	if _, err := l.Write(ctx, []ledger.Outcome{
		{Kind: modelid.KindModel, ID: ids[0], State: ledger.StateDeleted, Key: "earlier", At: old},
		{Kind: modelid.KindModel, ID: ids[1], State: ledger.StateDead, Key: "earlier", At: old},
	}); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, rdb, enqueue.Config{})
	r := enqueue.Request{Kind: modelid.KindModel, IDs: ids, Key: "big", RequestedBy: "ci", ProcessAt: time.Now().Add(time.Hour)}
	for range 2 {
		if _, err := p.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Write(ctx, []ledger.Outcome{
		{Kind: modelid.KindModel, ID: ids[2], State: ledger.StateRefused, Key: "big"},
		{Kind: modelid.KindModel, ID: ids[3], State: ledger.StateProtected, Key: "big"},
	}); err != nil {
		t.Fatal(err)
	}
	st, err := enqueue.ReadRequest(ctx, rdb, l, "big", 300)
	if st.KeyGenerated {
		t.Error("a given key read as generated")
	}
	if err != nil {
		t.Fatal(err)
	}
	wantStates := map[string]int{"pending": 247, "deleted": 1, "refused": 1, "protected": 1, "dead": 0, "presumed": 0, "cancelled": 0}
	for s, n := range wantStates {
		if st.States[s] != n {
			t.Errorf("%s: %d, want %d", s, st.States[s], n)
		}
	}
	if st.IDs != 250 || st.RequestedBy != "ci" || st.Kind != modelid.KindModel || st.ProcessAt.IsZero() || len(st.ByState["pending"]) != 247 || st.Truncated {
		t.Errorf("status %+v", st)
	}
	rc, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids[:3]})
	if err != nil {
		t.Fatal(err)
	}
	keys := rdb.Keys(ctx, "qfpurge:req:*").Val()
	slices.Sort(keys)
	want := []string{"qfpurge:req:big", "qfpurge:req:big:ids", "qfpurge:req:" + rc.Key, "qfpurge:req:" + rc.Key + ":ids"}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("request records %q, want %q (big's, and the keyless request's under its generated key)", keys, want)
	}
	if _, err := enqueue.ReadRequest(ctx, rdb, l, "nope", 0); err != enqueue.ErrNoRequest {
		t.Errorf("unknown key: %v, want ErrNoRequest", err)
	}
}

// TestGeneratedKey: a request given no key gets a fresh req-… key, in its
// receipt before any ID is added, which follows it (ReadRequest counts its
// IDs) and is carried by its tasks; its task IDs stay random (no '/',
// which asynqmon cannot delete). It makes nothing idempotent: the same IDs
// again are another request, under another key. The generated key is
// reserved: a later request given it with its own IDs is refused, and
// given keys behave as before.
func TestGeneratedKey(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	l := ledger.New(rdb, ledger.Config{})
	p := newProducer(t, rdb, enqueue.Config{})
	var ids []modelid.ID
	for i := range 150 {
		ids = append(ids, modelid.IntID(int64(i+1)))
	}
	ids = append(ids, modelid.StringID("am-gen1"))
	form := regexp.MustCompile(`^req-[0-9]{8}T[0-9]{6}Z-[a-z2-7]{26}$`)

	var rcs []enqueue.Receipt
	for range 2 {
		rc, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids, RequestedBy: "ci"})
		if err != nil {
			t.Fatal(err)
		}
		if !form.MatchString(rc.Key) || !rc.KeyGenerated {
			t.Errorf("key %q (generated %t), want req-<time>-<random>, generated", rc.Key, rc.KeyGenerated)
		}
		if rc.Tasks != 3 || rc.IDs != 151 {
			t.Errorf("%d tasks of %d IDs, want 3 of 151: a generated key makes no repeat", rc.Tasks, rc.IDs)
		}
		for _, b := range rc.Batches {
			if b.Existing || strings.Contains(b.TaskID, "/") || strings.HasPrefix(b.TaskID, rc.Key) {
				t.Errorf("task %+v: want a new, random task ID", b)
			}
			m, err := rdb.HGet(ctx, asynqlayout.Task(asynqlayout.Queue, b.TaskID), "msg").Bytes()
			if err != nil {
				t.Fatal(err)
			}
			msg, err := asynqlayout.DecodeMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			if pl, err := tasks.DecodePayload(msg.Payload); err != nil || pl.Key != rc.Key {
				t.Errorf("task %s carries key %q (%v), want %q", b.TaskID, pl.Key, err, rc.Key)
			}
		}
		st, err := enqueue.ReadRequest(ctx, rdb, l, rc.Key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.IDs != 151 || st.States["pending"] != 151 || !st.KeyGenerated || st.RequestedBy != "ci" {
			t.Errorf("status %+v, want 151 pending IDs asked by ci under a generated key", st)
		}
		rcs = append(rcs, rc)
	}
	if rcs[0].Key == rcs[1].Key {
		t.Errorf("two requests share key %q", rcs[0].Key)
	}

	// Given the generated key, another request is refused, nothing enqueued.
	_, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids[:1], Key: rcs[0].Key})
	if !errors.Is(err, enqueue.ErrKeyConflict) {
		t.Errorf("reusing a generated key: %v, want ErrKeyConflict", err)
	}

	// A Stream says its key before its first ID.
	s, err := p.Stream(enqueue.Request{Kind: modelid.KindModel})
	if err != nil {
		t.Fatal(err)
	}
	if k := s.Receipt().Key; !form.MatchString(k) || k == rcs[0].Key || k == rcs[1].Key {
		t.Errorf("stream key %q", k)
	}

	// A given key: as before, keyed task IDs and not generated.
	rc, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids[:2], Key: "given"})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Key != "given" || rc.KeyGenerated || rc.Batches[0].TaskID != "given/int/0" {
		t.Errorf("given key: receipt %+v", rc)
	}
}

// TestNewKeysDiffer: keys made in the same second never meet.
func TestNewKeysDiffer(t *testing.T) {
	now := time.Now()
	seen := map[string]bool{}
	for range 10_000 {
		k := enqueue.NewKey(now)
		if seen[k] || strings.Contains(k, "/") {
			t.Fatalf("key %q repeated or holds '/'", k)
		}
		seen[k] = true
	}
}
