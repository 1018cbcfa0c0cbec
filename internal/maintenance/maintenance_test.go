package maintenance_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/maintenance"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLoopPassesOnStartAndTicks(t *testing.T) {
	tk, newTicker := maintenance.NewManualTicker()
	passes := make(chan struct{}, 10)
	l := &maintenance.Loop{Every: time.Hour, Ticker: newTicker, Pass: func(context.Context) { passes <- struct{}{} }}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); !errors.Is(err, maintenance.ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	<-passes // the pass at start
	for range 3 {
		if !tk.Tick() {
			t.Fatal("the loop stopped its ticker")
		}
		<-passes
	}
	l.Stop()
	<-tk.Stopped()
	if len(passes) != 0 {
		t.Errorf("%d passes after the ticks were taken, want none", len(passes))
	}
	l.Stop() // a second Stop is harmless
}

func TestLoopDelayedWaitsForATick(t *testing.T) {
	tk, newTicker := maintenance.NewManualTicker()
	passes := make(chan struct{}, 10)
	l := &maintenance.Loop{Every: time.Hour, Delayed: true, Ticker: newTicker, Pass: func(context.Context) { passes <- struct{}{} }}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tk.Tick()
	<-passes
	l.Stop()
	if len(passes) != 0 {
		t.Errorf("a delayed loop passed %d extra times", len(passes))
	}
}

// A pass that blocks until its context ends is cut short by Stop.
func TestStopEndsAPassUnderWay(t *testing.T) {
	_, newTicker := maintenance.NewManualTicker()
	in := make(chan struct{})
	l := &maintenance.Loop{Every: time.Hour, Ticker: newTicker, Pass: func(ctx context.Context) { close(in); <-ctx.Done() }}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-in
	l.Stop() // returns only once the pass has
}

func TestStopWithoutStart(t *testing.T) {
	var l maintenance.Loop
	l.Stop()
	if err := (&maintenance.Loop{}).Start(context.Background()); err == nil {
		t.Error("a loop without Every and Pass started")
	}
}

type recorder struct {
	name string
	log  *[]string
	err  error
}

func (r recorder) Start(context.Context) error {
	*r.log = append(*r.log, "start "+r.name)
	return r.err
}
func (r recorder) Stop() { *r.log = append(*r.log, "stop "+r.name) }

func TestGroupStopsInReverseAndUnwindsAFailedStart(t *testing.T) {
	var log []string
	var g maintenance.Group
	if err := g.Start(context.Background(), recorder{"a", &log, nil}, recorder{"b", &log, nil}); err != nil {
		t.Fatal(err)
	}
	g.Stop()
	g.Stop()
	want := []string{"start a", "start b", "stop b", "stop a"}
	if !slices.Equal(log, want) {
		t.Errorf("log %v, want %v", log, want)
	}
	log = nil
	boom := errors.New("boom")
	if err := g.Start(context.Background(), recorder{"a", &log, nil}, recorder{"b", &log, boom}, recorder{"c", &log, nil}); !errors.Is(err, boom) {
		t.Fatalf("Start = %v, want boom", err)
	}
	want = []string{"start a", "start b", "stop a"}
	if !slices.Equal(log, want) {
		t.Errorf("after a failed start: %v, want %v", log, want)
	}
}
