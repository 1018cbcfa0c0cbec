package fleet_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"))
}

func TestKeyHidesAccessKey(t *testing.T) {
	t.Parallel()
	k := fleet.LimitKey("https://qianfan.baidubce.com", "AKIDsecretish")
	if !strings.HasPrefix(k, fleet.LimitKeyPrefix) || strings.Contains(k, "AKIDsecretish") {
		t.Fatalf("Key = %q: want the prefix and no access key", k)
	}
	if k == fleet.LimitKey("https://qianfan.baidubce.com", "other") || k == fleet.LimitKey("http://127.0.0.1:1", "AKIDsecretish") {
		t.Fatal("different credentials or endpoints must get different keys")
	}
	if k != fleet.LimitKey("https://qianfan.baidubce.com", "AKIDsecretish") {
		t.Fatal("Key is not stable")
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, qps := range []float64{0, -1} {
		if _, err := fleet.NewLimiter(nil, fleet.LimitConfig{QPS: qps}); err == nil {
			t.Errorf("New(QPS %g) = nil error, want one", qps)
		}
	}
	l, err := fleet.NewLimiter(nil, fleet.LimitConfig{QPS: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Interval(), 210*time.Millisecond; got != want {
		t.Errorf("Interval at 5 QPS with default headroom = %s, want %s", got, want)
	}
	l, _ = fleet.NewLimiter(nil, fleet.LimitConfig{QPS: 0.5, Headroom: -1})
	if got, want := l.Interval(), 2*time.Second; got != want {
		t.Errorf("Interval at 0.5 QPS without headroom = %s, want %s", got, want)
	}
}

// Two workers' clients, each with its own Limiter on one shared Redis,
// against a fake that rejects the 6th call in any second with code 18.
func TestTwoClientsShareTheBudget(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("paces 30 calls at 5 per second")
	}
	srv := redistest.Start(t)
	fake := qianfantest.New(qianfantest.Config{QPS: 5})
	api := httptest.NewServer(fake)
	defer api.Close()

	const calls = 30
	var waited atomic.Int64
	key := fleet.LimitKey(api.URL, qianfantest.DefaultAccessKey)
	var clients []*qianfan.Client
	for range 2 {
		l, err := fleet.NewLimiter(srv.Client(t), fleet.LimitConfig{QPS: 5, Key: key, Observe: func(d time.Duration) {
			if d > 0 {
				waited.Add(1)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
			qianfan.WithBaseURL(api.URL), qianfan.WithLimiter(l), qianfan.WithMaxElapsed(0))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	start := time.Now()
	for _, c := range clients {
		for range 4 { // each worker runs several batches at once
			wg.Go(func() {
				for {
					n := next.Add(1)
					if n > calls {
						return
					}
					if _, err := c.BatchDeleteModels(ctx, qianfan.IntIDs{n}); err != nil {
						errs <- err
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := fake.Stats()
	if st.Calls["18"] != 0 || st.Calls["ok"] != calls {
		t.Fatalf("fake saw %v, want %d ok and no code 18", st.Calls, calls)
	}
	// 30 calls at one per 210 ms: the last may start at 29 intervals.
	if min := 29 * 200 * time.Millisecond; elapsed < min {
		t.Errorf("%d calls took %s, faster than 5 per second allows (%s)", calls, elapsed, min)
	}
	if waited.Load() == 0 {
		t.Error("Observe never saw a wait")
	}
	t.Logf("%d calls from 2 clients in %s (limit 5/s: %s at least); waits %d", calls, elapsed.Round(time.Millisecond), 29*200*time.Millisecond, waited.Load())
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	l, err := fleet.NewLimiter(srv.Client(t), fleet.LimitConfig{QPS: 0.1, Key: fleet.LimitKeyPrefix + t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestWaitFailsWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	l, err := fleet.NewLimiter(rdb, fleet.LimitConfig{QPS: 5})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Wait(ctx); err == nil || !strings.HasPrefix(err.Error(), "fleet: limit:") {
		t.Fatalf("Wait with Redis down = %v, want a limiter error", err)
	}
}
