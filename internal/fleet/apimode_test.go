package fleet

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/maintenance"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

func TestSwitchOnceForTheFleet(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	a, b := NewAPIModeStore(rdb, Auto), NewAPIModeStore(rdb, Auto)
	if m, err := a.Effective(ctx); err != nil || m != V1 {
		t.Fatalf("auto before a switch: %v, %v; want v1", m, err)
	}
	first, err := a.Switch(ctx, "V1 gone")
	if err != nil || !first {
		t.Fatalf("first Switch = %v, %v", first, err)
	}
	if again, _ := b.Switch(ctx, "again"); again {
		t.Error("a second worker's Switch reported switching")
	}
	if m, _ := b.Effective(ctx); m != V2 {
		t.Errorf("another worker sees %v after the switch, want v2", m)
	}
	if why, at, _ := b.Switched(ctx); why != "V1 gone" || at.IsZero() {
		t.Errorf("Switched = %q at %v", why, at)
	}
	if m, _ := NewAPIModeStore(rdb, V1).Effective(ctx); m != V1 {
		t.Errorf("a worker forced to v1 sees %v", m)
	}
	for _, s := range []string{"v1", "v2", "auto"} {
		if _, err := ParseAPIMode(s); err != nil {
			t.Errorf("ParseAPIMode(%q): %v", s, err)
		}
	}
	if _, err := ParseAPIMode("v3"); err == nil {
		t.Error("ParseAPIMode(v3) succeeded")
	}
}

// TestJoinRefusesAMixedFleet: one fleet, one API. A worker whose explicit
// setting contradicts a live worker's, or an explicit v1 after the switch,
// refuses to start and names the conflict; a stale member does not count.
func TestJoinRefusesAMixedFleet(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	if err := NewAPIModeStore(rdb, V1).Join(ctx, "w1", now); err != nil {
		t.Fatal(err)
	}
	if err := NewAPIModeStore(rdb, V1).Join(ctx, "w2", now); err != nil {
		t.Fatalf("a second v1 worker: %v", err)
	}
	err := NewAPIModeStore(rdb, V2).Join(ctx, "w3", now)
	if !errors.Is(err, ErrAPIConflict) || !strings.Contains(err.Error(), "w1") || !strings.Contains(err.Error(), "v1") {
		t.Fatalf("a v2 worker beside v1 workers: %v; want a conflict naming the worker and its mode", err)
	}
	if err := NewAPIModeStore(rdb, Auto).Join(ctx, "w4", now); !errors.Is(err, ErrAPIConflict) {
		t.Fatalf("an auto worker beside v1 workers: %v; want a conflict", err)
	}
	// The v1 workers stop beating: once stale they no longer count.
	later := now.Add(memberTTL + time.Second)
	if err := NewAPIModeStore(rdb, V2).Join(ctx, "w3", later); err != nil {
		t.Fatalf("after the v1 workers went away: %v", err)
	}
	if err := NewAPIModeStore(rdb, V1).Leave(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	// An auto fleet that switched refuses a v1 worker.
	rdb2 := redistest.Start(t).Client(t)
	auto := NewAPIModeStore(rdb2, Auto)
	if err := auto.Join(ctx, "a1", now); err != nil {
		t.Fatal(err)
	}
	if _, err := auto.Switch(ctx, "V1 answered 404"); err != nil {
		t.Fatal(err)
	}
	if err := NewAPIModeStore(rdb2, V1).Join(ctx, "late", now); !errors.Is(err, ErrAPIConflict) || !strings.Contains(err.Error(), "switched to V2") {
		t.Fatalf("v1 after the switch: %v; want a conflict", err)
	}
	if err := auto.Leave(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := NewAPIModeStore(rdb2, V1).Join(ctx, "late", now); !errors.Is(err, ErrAPIConflict) {
		t.Fatalf("v1 after the switch, alone: %v; want a conflict", err)
	}
}

type stepClock struct{ t time.Time }

func (c *stepClock) Now() time.Time { return c.t }

func TestMemberBeatJoinsBeatsAndLeaves(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	clock := &stepClock{time.Unix(1_800_000_000, 0)}
	tk, newTicker := maintenance.NewManualTicker()
	b := NewMemberBeat(NewAPIModeStore(rdb, V1), "w1", BeatConfig{Clock: clock, Ticker: newTicker, Logger: slog.New(slog.DiscardHandler)})
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	score := func() float64 { return rdb.ZScore(ctx, keyMembers, "w1 v1").Val() }
	if got := score(); got != float64(clock.t.UnixMilli()) {
		t.Fatalf("joined at %v, want the clock's %v", got, clock.t.UnixMilli())
	}
	if err := NewMemberBeat(NewAPIModeStore(rdb, V2), "w2", BeatConfig{Clock: clock}).Start(ctx); !errors.Is(err, ErrAPIConflict) {
		t.Fatalf("a v2 member beside a v1 one started: %v", err)
	}
	clock.t = clock.t.Add(Heartbeat)
	tk.Tick()
	b.Stop() // waits for the beat the tick started
	if got := score(); got != 0 {
		t.Errorf("still a member (%v) after Stop", got)
	}
	if n := rdb.ZCard(ctx, keyMembers).Val(); n != 0 {
		t.Errorf("%d members left, want none", n)
	}
}
