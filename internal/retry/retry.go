// Package retry is qfpurge's one exponential back-off policy: the same
// Policy gives the waits between attempts inside one API call and the delay
// before the n-th retry of a queued task.
package retry

import (
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Policy is exponential back-off with jitter: the n-th wait is
// Initial × Multiplier^n, capped at Max, then spread uniformly over
// ±Jitter of itself.
type Policy struct {
	// Initial is the first wait. Defaults to 1s.
	Initial time.Duration
	// Max caps the wait before jitter, so a wait is at most Max × (1+Jitter).
	// Defaults to Initial × 64 (six doublings).
	Max time.Duration
	// Multiplier is the growth per retry, at least 1. Defaults to 2.
	Multiplier float64
	// Jitter is the randomization factor in [0, 1): 0.2 spreads each wait
	// over ±20%. Defaults to 0 (no jitter).
	Jitter float64
}

// Calls is the policy for waits inside one Qianfan call after a transient
// answer: 300 ms doubling to 10 s, ±50%.
func Calls() Policy {
	return Policy{Initial: 300 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.5}
}

// Tasks is the policy for Asynq's RetryDelayFunc: 5 s doubling to a
// 10 minute cap, ±20%.
func Tasks() Policy {
	return Policy{Initial: 5 * time.Second, Max: 10 * time.Minute, Multiplier: 2, Jitter: 0.2}
}

// Validate names the first field that cannot work.
func (p Policy) Validate() error {
	switch {
	case p.Initial < 0:
		return errors.New("retry: Policy.Initial is negative")
	case p.Max < 0:
		return errors.New("retry: Policy.Max is negative")
	case p.Max != 0 && p.Max < p.Initial:
		return errors.New("retry: Policy.Max is below Policy.Initial")
	case (p.Multiplier != 0 && p.Multiplier < 1) || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0):
		return errors.New("retry: Policy.Multiplier must be a finite number >= 1")
	case p.Jitter < 0 || p.Jitter >= 1 || math.IsNaN(p.Jitter):
		return errors.New("retry: Policy.Jitter must be in [0, 1)")
	}
	return nil
}

// withDefaults fills zero fields and clamps what Validate would reject, so
// that a bad Policy degrades to a working one instead of panicking.
func (p Policy) withDefaults() Policy {
	p.Initial = max(cmp.Or(p.Initial, time.Second), time.Nanosecond)
	p.Max = max(cmp.Or(p.Max, 64*p.Initial), p.Initial)
	p.Multiplier = cmp.Or(p.Multiplier, 2)
	if p.Multiplier < 1 || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0) {
		p.Multiplier = 1
	}
	if p.Jitter < 0 || p.Jitter >= 1 || math.IsNaN(p.Jitter) {
		p.Jitter = 0
	}
	return p
}

// Scaled returns the policy with Initial and Max multiplied by f (e.g.
// longer waits after a throttled answer). f below 1 counts as 1.
func (p Policy) Scaled(f float64) Policy {
	p = p.withDefaults()
	f = max(f, 1)
	p.Initial = scale(p.Initial, f)
	p.Max = scale(p.Max, f)
	return p
}

// NewBackOff returns a fresh *backoff.ExponentialBackOff for retries inside
// one call. It never stops by itself (MaxElapsedTime 0): the caller bounds
// the call.
func (p Policy) NewBackOff() *backoff.ExponentialBackOff {
	p = p.withDefaults()
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Initial),
		backoff.WithMaxInterval(p.Max),
		backoff.WithMultiplier(p.Multiplier),
		backoff.WithRandomizationFactor(p.Jitter),
		backoff.WithMaxElapsedTime(0),
	)
}

// Nominal is the wait before the n-th retry without jitter, where n counts
// the retries already made (0 for the first, as Asynq's RetryDelayFunc
// counts): min(Initial × Multiplier^n, Max). n < 0 counts as 0.
func (p Policy) Nominal(n int) time.Duration {
	p = p.withDefaults()
	d := float64(p.Initial) * math.Pow(p.Multiplier, float64(max(n, 0)))
	if d >= float64(p.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		return p.Max
	}
	return time.Duration(d)
}

// Delay is Nominal(n) spread uniformly over ±Jitter: the (n+1)-th wait a
// fresh NewBackOff would give, computed directly because backoff/v4 overflows
// on very long waits.
func (p Policy) Delay(n int) time.Duration {
	p = p.withDefaults()
	return jitter(p.Nominal(n), p.Jitter, rand.Float64())
}

// jitter maps r in [0,1) onto [d×(1-f), d×(1+f)].
func jitter(d time.Duration, f, r float64) time.Duration {
	if f == 0 {
		return d
	}
	delta := f * float64(d)
	return clamp(float64(d) - delta + r*2*delta)
}

func scale(d time.Duration, f float64) time.Duration { return clamp(float64(d) * f) }

// clamp converts to a Duration without overflowing.
func clamp(f float64) time.Duration {
	if f >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(f)
}
