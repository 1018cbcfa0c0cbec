package worker

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/maintenance"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// Every background service of a worker runs a pass when ticked, stops at
// once on Stop (a hang fails the test), and leaves no goroutine behind.
// Not parallel: goleak compares with the goroutines present at its start.
func TestServicesStopPromptly(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")}
	// Registered first, so it runs after Redis and the fake have stopped.
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })

	rdb := redistest.Start(t).Client(t)
	api := httptest.NewServer(qianfantest.New(qianfantest.Config{}))
	t.Cleanup(api.Close)
	sched := filepath.Join(t.TempDir(), "schedule.yaml")
	if err := os.WriteFile(sched, []byte("schedules:\n  - name: r\n    cron: '@daily'\n    kind: model\n    ids: [1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var tickers []*maintenance.ManualTicker
	newTicker := func(time.Duration) maintenance.Ticker {
		m, _ := maintenance.NewManualTicker()
		mu.Lock()
		defer mu.Unlock()
		tickers = append(tickers, m)
		return m
	}
	clock := fixedClock{time.Unix(1_900_000_000, 0)}
	w, err := New(rdb, Config{
		AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey, BaseURL: api.URL,
		ShutdownTimeout: 5 * time.Second, InventoryEvery: time.Hour, Schedule: sched,
		Clock: clock, Ticker: newTicker, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if w.sched, err = w.newScheduler(); err != nil {
		t.Fatal(err)
	}
	beat := fleet.NewMemberBeat(w.mode, w.member, fleet.BeatConfig{Clock: clock, Ticker: newTicker, Logger: w.log})
	services := append([]maintenance.Service{beat}, w.maintenance()...)
	if len(services) != 7 {
		t.Fatalf("%d services, want 7: beat, sweeper, verifier, prober, refresh, asynq, scheduler", len(services))
	}
	ctx := context.Background()
	for i, s := range services {
		mu.Lock()
		before := len(tickers)
		mu.Unlock()
		if err := s.Start(ctx); err != nil {
			t.Fatalf("service %d (%T): %v", i, s, err)
		}
		mu.Lock()
		mine := tickers[before:]
		mu.Unlock()
		for _, tk := range mine {
			if !tk.Tick() {
				t.Errorf("service %d (%T) stopped its ticker on its own", i, s)
			}
		}
		stopped := make(chan struct{})
		go func() { s.Stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatalf("service %d (%T) did not stop", i, s)
		}
		for _, tk := range mine {
			<-tk.Stopped()
		}
		s.Stop() // a second Stop is harmless
	}
	// The heartbeat's tick renewed this worker's place at the clock's time.
	score, err := rdb.ZScore(ctx, "qfpurge:api:workers", w.member+" auto").Result()
	if err == nil {
		t.Errorf("the worker is still a member (score %v) after its heartbeat stopped: Stop must leave", score)
	}
}
