package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// TestMain also plays the child roles (the fake Qianfan) the harness starts
// from this test binary.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		cli.Main("bench", func(ctx context.Context) error { return runRole(ctx, role, os.Args[1:], os.Stdout, os.Stderr) })
	}
	// Baidu's SDK starts its logger's goroutine at init.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"))
}

// logWriter sends the harness's progress lines to t.Log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestChaos is the chaos scenario, small: 2,000 single-ID jobs (10 of them
// invalid), 10% transient faults including dropped answers, and two
// SIGKILLs of the worker process, which is restarted at once. It fails if a
// valid ID is lost, left without an end state or dead-lettered, or an
// invalid ID is dead-lettered more than once.
//
// It takes about 100 s on 2 CPUs: the batches a killed worker was running come back
// only when Asynq's recoverer finds their lease expired (30 s lease, 30 s
// more grace, checked once a minute; hard-coded in Asynq v0.26.0).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos test takes about two minutes")
	}
	if redistest.Binary() == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(redistest.MissingMessage)
		}
		t.Skip(redistest.MissingMessage)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("QFPURGE_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set QFPURGE_CHAOS_SEED to repeat the fault sequence)", seed)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e, err := newEnv(ctx, logWriter{t}, false, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r, err := runChaos(ctx, e, chaosConfig{
		IDs: 2000, Invalid: 10, Kills: 2, KillWithin: 2 * time.Second, Seed: seed,
		QPS: 100, Producers: 8, Timeout: 3 * time.Minute, Log: logWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tb table
	r.rows(&tb)
	var b strings.Builder
	tb.print(&b)
	t.Log("\n" + b.String())
	for _, f := range r.failures() {
		t.Error(f)
	}
	if r.InvalidDeadOnce != r.Cfg.Invalid {
		t.Errorf("invalid IDs: %d dead once, of %d", r.InvalidDeadOnce, r.Cfg.Invalid)
	}
	// 10% of well over 100 calls: none at all means the faults are off.
	if r.Calls["ok"] == 0 || r.Calls["503"]+r.Calls["336100"]+r.Calls["500000"]+r.Calls["reset"]+r.Calls["drop"] == 0 {
		t.Errorf("faults were not injected: calls %v", r.Calls)
	}
}
