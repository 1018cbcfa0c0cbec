package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/fakeqianfan"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/producer"
)

// monFreeAddr returns a free loopback host:port.
func monFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type monSyncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *monSyncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *monSyncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func monGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The acceptance check: a worker with --monitor-addr 127.0.0.1:PORT serves
// the UI, its API, metrics and health, and /readyz turns 503 without Redis.
func TestWorkerMonitor(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	fake := fakeqianfan.New(fakeqianfan.Config{Invalid: fakeqianfan.InvalidIDs(int64(7))})
	api := httptest.NewServer(fake)
	defer api.Close()
	addr := monFreeAddr(t)
	env := map[string]string{
		"REDIS_URL": srv.URL(), "QIANFAN_BASE_URL": api.URL,
		"QIANFAN_ACCESS_KEY": fakeqianfan.DefaultAccessKey, "QIANFAN_SECRET_KEY": fakeqianfan.DefaultSecretKey,
	}
	args := []string{"--monitor-addr", addr, "--qps", "50", "--batch-wait", "1s", "--batch-max-wait", "1s",
		"--shutdown-timeout", "2s", "--sweep-interval", "1s", "--max-retry", "0", "--log-level", "warn"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs monSyncBuf
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, &logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("worker logs:\n%s", logs.String())
		}
	}()
	base := "http://" + addr
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	waitFor("/readyz 200", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	p, err := producer.New(srv.Client(t), producer.Config{BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(ctx, producer.Request{Kind: producer.KindModel, IDs: []producer.ID{producer.IntID(5), producer.IntID(6), producer.IntID(7)}}); err != nil {
		t.Fatal(err)
	}
	// 5 and 6 are deleted after a bisection; 7 is dead-lettered.
	waitFor("the dead letter in /metrics", func() bool {
		_, body := monGet(t, base+"/metrics")
		return strings.Contains(body, "qfpurge_dead_letters 1") &&
			strings.Contains(body, `qfpurge_ids_total{id_type="int",kind="model",state="deleted"} 2`)
	})

	if code, body := monGet(t, base+"/monitoring/"); code != 200 || !strings.Contains(body, `<div id="root">`) {
		t.Errorf("GET /monitoring/ = %d, want the asynqmon page", code)
	}
	if code, body := monGet(t, base+"/monitoring/api/queues"); code != 200 || !strings.Contains(body, `"queue":"qfpurge"`) {
		t.Errorf("GET /monitoring/api/queues = %d %s, want the qfpurge queue", code, body)
	}
	if code, body := monGet(t, base+"/monitoring/api/queues/qfpurge/archived_tasks"); code != 200 || !strings.Contains(body, "1 int ID: 7") {
		t.Errorf("archived tasks = %d %s, want the dead letter for ID 7", code, body)
	}
	_, metrics := monGet(t, base+"/metrics")
	for _, want := range []string{
		`asynq_queue_size{queue="qfpurge"}`,
		`qfpurge_api_calls_total{id_type="int",kind="model",outcome="500001"}`,
		`qfpurge_batch_splits_total{kind="model",reason="bisect"} 2`, // [5 6 7] → [5] [6 7] → [6] [7]
		`qfpurge_ids_total{id_type="int",kind="model",state="dead"} 1`,
		`qfpurge_fleet_limiter_wait_seconds_count`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := monGet(t, base+"/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d", code)
	}
	srv.Stop()
	if code, _ := monGet(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with Redis down = %d, want 503", code)
	}
}

func TestWorkerMonitorRefusesOpenAddressWithoutCredentials(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	env := map[string]string{
		"REDIS_URL": srv.URL(), "QIANFAN_ACCESS_KEY": "ak", "QIANFAN_SECRET_KEY": "sk",
		"QFPURGE_MONITOR_PASSWORD": "hunter2-secret", // a password without a user is not enough
	}
	var logs monSyncBuf
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"--monitor-addr", "0.0.0.0:0", "--shutdown-timeout", "1s"}, func(k string) string { return env[k] }, io.Discard, &logs)
	if err == nil || !strings.Contains(err.Error(), "monitor") {
		t.Fatalf("run with an open monitor address and no credentials = %v, want a monitor error", err)
	}
	env["QFPURGE_MONITOR_USER"] = "ops"
	delete(env, "QFPURGE_MONITOR_PASSWORD")
	err = run(ctx, []string{"--monitor-addr", "0.0.0.0:0"}, func(k string) string { return env[k] }, io.Discard, &logs)
	if !errors.Is(err, monitor.ErrNoCredentials) {
		t.Fatalf("run with an open monitor address and only a user = %v, want ErrNoCredentials", err)
	}
	if strings.Contains(logs.String(), "hunter2-secret") {
		t.Error("the monitor password reached the logs")
	}
}

func TestMonitorConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		args         []string
		env          map[string]string
		wantAddr     string
		wantExplicit bool
	}{
		{"default", nil, nil, monitor.DefaultAddr, false},
		{"flag", []string{"--monitor-addr", "127.0.0.1:9"}, nil, "127.0.0.1:9", true},
		{"env", nil, map[string]string{envMonitorAddr: "127.0.0.1:7"}, "127.0.0.1:7", true},
		{"off", []string{"--monitor-addr", ""}, nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.Monitor.Addr != tc.wantAddr || c.Monitor.explicit != tc.wantExplicit {
				t.Errorf("monitor addr %q explicit %v, want %q %v", c.Monitor.Addr, c.Monitor.explicit, tc.wantAddr, tc.wantExplicit)
			}
		})
	}
}

// BenchmarkFleetQPS is the fleet figure: two workers with --qps 5
// share one Redis and drain 3,000 IDs (30 calls of 100) against a fake that
// rejects the 6th call in any second. It reports the drain time against the
// 5 calls/s floor and the code-18 rejections. Run it with
//
//	go test -run '^$' -bench FleetQPS -benchtime 1x ./cmd/worker
func BenchmarkFleetQPS(b *testing.B) {
	for range b.N {
		srv := redistest.Start(b)
		fake := fakeqianfan.New(fakeqianfan.Config{QPS: 5})
		api := httptest.NewServer(fake)
		env := map[string]string{
			"REDIS_URL": srv.URL(), "QIANFAN_BASE_URL": api.URL,
			"QIANFAN_ACCESS_KEY": fakeqianfan.DefaultAccessKey, "QIANFAN_SECRET_KEY": fakeqianfan.DefaultSecretKey,
		}
		args := []string{"--monitor-addr", "", "--qps", "5", "--shutdown-timeout", "5s", "--log-level", "error"}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if err := run(ctx, args, func(k string) string { return env[k] }, io.Discard, io.Discard); err != nil {
					b.Error(err)
				}
			})
		}
		p, err := producer.New(srv.Client(b), producer.Config{})
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]producer.ID, 3000)
		for i := range ids {
			ids[i] = producer.IntID(int64(100000 + i))
		}
		start := time.Now()
		if _, err := p.Enqueue(ctx, producer.Request{Kind: producer.KindModel, IDs: ids}); err != nil {
			b.Fatal(err)
		}
		var drained time.Duration
		for deadline := start.Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if fake.Stats().IDsDeleted >= len(ids) {
				drained = time.Since(start)
				break
			}
		}
		cancel()
		wg.Wait()
		api.Close()
		st := fake.Stats()
		if drained == 0 {
			b.Fatalf("not drained in 2 minutes: %+v", st)
		}
		calls := st.Calls["ok"]
		floor := time.Duration(calls-1) * time.Second / 5 // first call at 0, then one per 200 ms
		b.ReportMetric(drained.Seconds(), "drain-s")
		b.ReportMetric(drained.Seconds()/floor.Seconds(), "x-limit")
		b.ReportMetric(float64(st.Calls["18"]), "code18")
		b.Logf("2 workers, --qps 5: %d IDs in %d calls drained in %s; the 5 calls/s limit allows %s at best (%.0f%% over); code-18 rejections: %d; all calls: %v",
			st.IDsDeleted, calls, drained.Round(time.Millisecond), floor, 100*(drained.Seconds()/floor.Seconds()-1), st.Calls["18"], st.Calls)
		if st.Calls["18"] != 0 {
			b.Errorf("%d calls were rejected with code 18", st.Calls["18"])
		}
	}
}
