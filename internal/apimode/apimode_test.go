package apimode

import (
	"context"
	"testing"

	"github.com/qfpurge/qfpurge/internal/redistest"
)

func TestSwitchOnceForTheFleet(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	a, b := NewStore(rdb, Auto), NewStore(rdb, Auto)
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
	if m, _ := NewStore(rdb, V1).Effective(ctx); m != V1 {
		t.Errorf("a worker forced to v1 sees %v", m)
	}
	for _, s := range []string{"v1", "v2", "auto"} {
		if _, err := Parse(s); err != nil {
			t.Errorf("Parse(%q): %v", s, err)
		}
	}
	if _, err := Parse("v3"); err == nil {
		t.Error("Parse(v3) succeeded")
	}
}
