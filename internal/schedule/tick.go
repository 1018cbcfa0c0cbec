package schedule

import (
	"time"

	"github.com/robfig/cron/v3"
)

// earlyTolerance is how far before a scheduled time a reference may be and
// still count as that tick: a replica whose clock runs a little fast fires,
// or handles a trigger, slightly before the others.
const earlyTolerance = 10 * time.Second

// Tick returns the scheduled time a trigger fired at ref belongs to, and the
// schedule's period there (the time to the following tick).
//
// For cron specs and descriptors it is the latest scheduled time at or before
// ref, unless the next one is at most min(10s, period/4) after ref (a clock
// running slightly fast). For "@every D" it is ref rounded to a multiple of D
// since the Unix epoch, so replicas started at different moments share ticks.
func Tick(s cron.Schedule, ref time.Time) (tick time.Time, period time.Duration) {
	if c, ok := s.(cron.ConstantDelaySchedule); ok {
		d := c.Delay
		n := ref.UnixNano()
		return time.Unix(0, (n+int64(d)/2)/int64(d)*int64(d)), d
	}
	prev := prevTick(s, ref)
	if prev.IsZero() {
		next := s.Next(ref)
		return next, next.Sub(ref)
	}
	next := s.Next(prev)
	period = next.Sub(prev)
	if next.Sub(ref) <= min(earlyTolerance, period/4) {
		return next, s.Next(next).Sub(next)
	}
	return prev, period
}

// prevTick returns the latest scheduled time at or before ref, or zero when
// there is none within five years.
func prevTick(s cron.Schedule, ref time.Time) time.Time {
	for _, back := range []time.Duration{2 * time.Minute, 2 * time.Hour, 50 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 366 * 24 * time.Hour} {
		t := s.Next(ref.Add(-back))
		if t.IsZero() || t.After(ref) {
			continue
		}
		for {
			n := s.Next(t)
			if n.IsZero() || n.After(ref) {
				return t
			}
			t = n
		}
	}
	return time.Time{}
}

// claimTTL is how long the once-per-tick claim and the fire-time record are
// kept: two periods, and at least an hour, so triggers that waited in a
// backlog still find them.
func claimTTL(period time.Duration) time.Duration {
	return max(time.Hour, 2*period)
}
