package enqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// BenchmarkStream streams 1,000,000 distinct int IDs (10,000 ready batches)
// into a real redis-server and reports IDs per second. Redis is flushed
// between iterations, outside the timer. unkeyed gives the request no key
// (it gets a generated one), keyed gives it one; both are recorded for
// GET /v1/requests/{key}, keyed ones with keyed task IDs.
func BenchmarkStream(b *testing.B) {
	b.Run("unkeyed", func(b *testing.B) { benchStream(b, "") })
	b.Run("keyed", func(b *testing.B) { benchStream(b, "bench") })
}

func benchStream(b *testing.B, key string) {
	const n = 1_000_000
	rdb := redistest.Start(b).Client(b)
	ctx := context.Background()
	p, err := enqueue.New(rdb, enqueue.Config{})
	if err != nil {
		b.Fatal(err)
	}
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		s, err := p.Stream(enqueue.Request{Kind: modelid.KindModel, Key: key, OnBatch: func(enqueue.Batch) {}})
		if err != nil {
			b.Fatal(err)
		}
		for i := range int64(n) {
			if err := s.Add(ctx, modelid.IntID(10_000_000+i)); err != nil {
				b.Fatal(err)
			}
		}
		rc, err := s.Close(ctx)
		if err != nil || rc.Tasks != n/100 {
			b.Fatalf("%d tasks, %v", rc.Tasks, err)
		}
		took += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/took.Seconds(), "IDs/s")
	b.ReportMetric(0, "ns/op")
}
