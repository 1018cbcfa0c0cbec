package retry

import (
	"math"
	"testing"
	"time"
)

func TestDelayBounds(t *testing.T) {
	t.Parallel()
	tasks := Tasks()
	for _, tt := range []struct {
		name     string
		p        Policy
		n        int
		min, max time.Duration
	}{
		{"tasks first retry", tasks, 0, 4 * time.Second, 6 * time.Second},
		{"tasks second retry", tasks, 1, 8 * time.Second, 12 * time.Second},
		{"tasks 7th retry", tasks, 6, 256 * time.Second, 384 * time.Second},
		{"tasks capped", tasks, 7, 8 * time.Minute, 12 * time.Minute},
		{"tasks far past the cap", tasks, 1000, 8 * time.Minute, 12 * time.Minute},
		{"tasks huge n", tasks, math.MaxInt, 8 * time.Minute, 12 * time.Minute},
		{"negative n is the first", tasks, -3, 4 * time.Second, 6 * time.Second},
		{"calls first", Calls(), 0, 150 * time.Millisecond, 450 * time.Millisecond},
		{"calls capped", Calls(), 10, 5 * time.Second, 15 * time.Second},
		{"no jitter is exact", Policy{Initial: time.Second, Max: time.Minute, Multiplier: 3}, 2, 9 * time.Second, 9 * time.Second},
		{"zero policy takes defaults", Policy{}, 1, 2 * time.Second, 2 * time.Second},
		{"multiplier below 1 counts as 1", Policy{Initial: time.Second, Max: time.Minute, Multiplier: 0.5}, 5, time.Second, time.Second},
		{"bad jitter is none", Policy{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 3}, 0, time.Second, time.Second},
		{"max near overflow", Policy{Initial: time.Hour, Max: time.Duration(math.MaxInt64), Multiplier: 10, Jitter: 0.5}, 100, time.Duration(math.MaxInt64 / 2), time.Duration(math.MaxInt64)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 200 {
				if d := tt.p.Delay(tt.n); d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d) = %v, want in [%v, %v]", tt.n, d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestJitterCoversTheRange(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		r    float64
		want time.Duration
	}{
		{0, 8 * time.Second},
		{0.5, 10 * time.Second},
		{0.999999999, 12 * time.Second},
	} {
		if got := jitter(10*time.Second, 0.2, tt.r); got < tt.want-time.Millisecond || got > tt.want+time.Millisecond {
			t.Errorf("jitter(10s, 0.2, %v) = %v, want %v", tt.r, got, tt.want)
		}
	}
}

func TestNewBackOffFollowsThePolicy(t *testing.T) {
	t.Parallel()
	p := Policy{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, Multiplier: 2, Jitter: 0.5}
	b := p.NewBackOff()
	for i := range 6 {
		nominal := p.Nominal(i)
		d := b.NextBackOff()
		if d < nominal/2 || d > nominal*3/2 {
			t.Errorf("step %d: %v outside ±50%% of %v", i, d, nominal)
		}
	}
	if b.MaxElapsedTime != 0 {
		t.Errorf("MaxElapsedTime = %v, want 0 (the caller bounds the call)", b.MaxElapsedTime)
	}
}

func TestScaledAndValidate(t *testing.T) {
	t.Parallel()
	s := Calls().Scaled(4)
	if s.Initial != 1200*time.Millisecond || s.Max != 40*time.Second || s.Jitter != 0.5 {
		t.Errorf("Scaled(4) = %+v", s)
	}
	if Calls().Scaled(0.1).Initial != 300*time.Millisecond {
		t.Error("Scaled below 1 shrank the policy")
	}
	for _, p := range []Policy{Calls(), Tasks(), {}} {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", p, err)
		}
	}
	for _, p := range []Policy{
		{Initial: -1}, {Max: -1}, {Initial: time.Second, Max: time.Millisecond},
		{Multiplier: -2}, {Multiplier: 0.5}, {Multiplier: math.Inf(1)}, {Jitter: 1}, {Jitter: -0.1},
	} {
		if p.Validate() == nil {
			t.Errorf("Validate(%+v) accepted it", p)
		}
	}
}
