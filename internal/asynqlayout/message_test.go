package asynqlayout_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// TestMessageMatchesAsynq lets Asynq's client write task messages of every
// shape qfpurge writes, decodes them, and encodes them again: the bytes must
// be Asynq's own.
func TestMessageMatchesAsynq(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	c := asynq.NewClientFromRedisClient(rdb)
	const queue = "msg"
	cases := []struct {
		name string
		opts []asynq.Option
		want asynqlayout.Message
	}{
		{"ready", []asynq.Option{asynq.MaxRetry(12), asynq.Timeout(5 * time.Minute), asynq.Retention(7 * 24 * time.Hour)},
			asynqlayout.Message{Retry: 12, Timeout: 300, Retention: 604800}},
		{"grouped", []asynq.Option{asynq.MaxRetry(3), asynq.Timeout(time.Minute), asynq.Group("model/int/01")},
			asynqlayout.Message{Retry: 3, Timeout: 60, Group: "model/int/01"}},
		{"scheduled", []asynq.Option{asynq.ProcessIn(time.Hour), asynq.Retention(time.Hour)},
			asynqlayout.Message{Retry: 25, Timeout: 1800, Retention: 3600}},
		{"deadline", []asynq.Option{asynq.Deadline(time.Unix(2000000000, 0)), asynq.MaxRetry(0)},
			asynqlayout.Message{Deadline: 2000000000}},
		{"negative retry", []asynq.Option{asynq.MaxRetry(-1)}, asynqlayout.Message{Timeout: 1800}}, // Asynq makes it 0
	}
	for _, tc := range cases {
		payload := []byte(`{"kind":"model","model_ids":[1,2]}`)
		info, err := c.EnqueueContext(ctx, asynq.NewTask("t:"+tc.name, payload), append(tc.opts, asynq.Queue(queue))...)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := rdb.HGet(ctx, asynqlayout.Task(queue, info.ID), "msg").Bytes()
		if err != nil {
			t.Fatalf("%s: Task(%q, id) = %q holds no msg: %v", tc.name, queue, asynqlayout.Task(queue, info.ID), err)
		}
		m, err := asynqlayout.DecodeMessage(raw)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := tc.want
		want.Type, want.Payload, want.ID, want.Queue = "t:"+tc.name, payload, info.ID, queue
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("%s: decoded (-want +got):\n%s", tc.name, diff)
		}
		if got := m.AppendEncode(nil); !bytes.Equal(got, raw) {
			t.Errorf("%s: encoded\n%x\nAsynq wrote\n%x", tc.name, got, raw)
		}
	}
	if ok, err := rdb.SIsMember(ctx, asynqlayout.Queues, queue).Result(); err != nil || !ok {
		t.Errorf("Queues = %q does not hold %q (err %v)", asynqlayout.Queues, queue, err)
	}
	if n, err := rdb.LLen(ctx, asynqlayout.Pending(queue)).Result(); err != nil || n != 3 {
		t.Errorf("Pending(%q) holds %d tasks, want 3 (err %v)", queue, n, err)
	}
	if n, err := rdb.ZCard(ctx, asynqlayout.Scheduled(queue)).Result(); err != nil || n != 1 {
		t.Errorf("Scheduled(%q) holds %d tasks, want 1 (err %v)", queue, n, err)
	}
}

func TestDecodeMessageRefusesGarbage(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{{0x0a, 0x05, 'a'}, {0xff}, {0x10, 0x01}} {
		if _, err := asynqlayout.DecodeMessage(b); err == nil {
			t.Errorf("DecodeMessage(%x) took it", b)
		}
	}
}
