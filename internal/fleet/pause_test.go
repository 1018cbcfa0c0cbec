package fleet

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/redistest"
)

func TestPauseProbeCanaryResume(t *testing.T) {
	s := NewPauseStore(redistest.Start(t).Client(t))
	ctx := context.Background()
	if st, err := s.Status(ctx); err != nil || st.State != Running {
		t.Fatalf("fresh status %+v, %v; want running", st, err)
	}
	first, err := s.Pause(ctx, "unknown access key")
	if err != nil || !first {
		t.Fatalf("first Pause = %v, %v; want true", first, err)
	}
	if again, _ := s.Pause(ctx, "other reason"); again {
		t.Error("a second Pause reported pausing a running fleet")
	}
	st, _ := s.Status(ctx)
	if st.State != Paused || st.Reason != "unknown access key" || st.Since.IsZero() {
		t.Errorf("status %+v; want paused with the first reason", st)
	}
	// Probing: exactly one canary.
	if err := s.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Canary(ctx, "task-a", time.Minute)
	b, _ := s.Canary(ctx, "task-b", time.Minute)
	if !a || b {
		t.Errorf("canaries a=%v b=%v; want only the first", a, b)
	}
	// The canary is refused again: paused, one try counted.
	if first, _ := s.Pause(ctx, "still refused"); first {
		t.Error("a failed canary reported a new pause")
	}
	st, _ = s.Status(ctx)
	if st.State != Paused || st.Tries != 1 || st.Reason != "unknown access key" {
		t.Errorf("after a failed canary %+v; want paused, 1 try, the first reason", st)
	}
	if err := s.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Canary(ctx, "task-c", time.Minute); !got {
		t.Error("a new probe round offered no canary")
	}
	if was, err := s.Resume(ctx); err != nil || !was {
		t.Fatalf("Resume = %v, %v; want it to end a pause", was, err)
	}
	if st, _ := s.Status(ctx); st.State != Running {
		t.Errorf("after Resume %+v; want running", st)
	}
	if was, _ := s.Resume(ctx); was {
		t.Error("a second Resume reported ending a pause")
	}
}

func TestProber(t *testing.T) {
	s := NewPauseStore(redistest.Start(t).Client(t))
	ctx := context.Background()
	var probeErr error
	probes := 0
	p := NewProber(s, ProberConfig{Every: time.Hour, Logger: slog.New(slog.DiscardHandler),
		Probe: func(context.Context) error { probes++; return probeErr }})
	p.Once(ctx)
	if probes != 0 {
		t.Fatal("probed a running fleet")
	}
	if _, err := s.Pause(ctx, "signature mismatch"); err != nil {
		t.Fatal(err)
	}
	probeErr = errors.New("401")
	p.Once(ctx)
	if st, _ := s.Status(ctx); probes != 1 || st.State != Paused {
		t.Fatalf("after a failed probe: %d probes, %+v; want 1, paused", probes, st)
	}
	// Another worker's prober within the interval does not probe again.
	p2 := NewProber(s, ProberConfig{Every: time.Hour, Logger: slog.New(slog.DiscardHandler),
		Probe: func(context.Context) error { probes++; return nil }})
	p2.Once(ctx)
	if probes != 1 {
		t.Errorf("%d probes, want 1: the fleet probes once per interval", probes)
	}
	s.rdb.Del(ctx, keyProbe)
	p2.Once(ctx)
	if st, _ := s.Status(ctx); st.State != Probing {
		t.Errorf("after a good probe %+v; want probing", st)
	}
	// A manual pause is never probed.
	if _, err := s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PauseManual(ctx, "maintenance"); err != nil {
		t.Fatal(err)
	}
	s.rdb.Del(ctx, keyProbe)
	p2.Once(ctx)
	if st, _ := s.Status(ctx); st.State != Paused || !st.Manual || probes != 2 {
		t.Errorf("manual pause %+v after %d probes; want still paused, not probed", st, probes)
	}
}
