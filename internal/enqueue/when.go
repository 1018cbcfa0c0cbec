package enqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The horizon of a deletion's time, the same for every producer.
const (
	// MaxAhead is the furthest ahead a deletion may be scheduled.
	MaxAhead = 365 * 24 * time.Hour
	// MaxBehind is how far in the past a time may be and still mean "now":
	// clocks differ a little, and a time computed a moment ago has passed.
	// Further back it is refused, being more likely a wrong date or zone
	// than a wish to delete at once.
	MaxBehind = time.Minute
)

// ErrTooEarly and ErrTooLate wrap the errors of CheckWhen and CheckDelay.
var (
	ErrTooEarly = errors.New("in the past")
	ErrTooLate  = errors.New("too far ahead")
)

// CheckWhen reports why at cannot be a deletion's time, seen at now: more
// than MaxBehind ago, or more than MaxAhead ahead. A zero at means now.
// The error does not name the field: callers prefix it ("--at", "process_at").
func CheckWhen(at, now time.Time) error {
	switch {
	case at.IsZero():
		return nil
	case now.Sub(at) > MaxBehind:
		return fmt.Errorf("%s is %w: %s before now (%s), more than %s; give a future time, or none to delete now",
			at.Format(time.RFC3339), ErrTooEarly, now.Sub(at).Round(time.Second), now.UTC().Format(time.RFC3339), MaxBehind)
	case at.Sub(now) > MaxAhead:
		return fmt.Errorf("%s is %w: more than %s after now (%s)", at.Format(time.RFC3339), ErrTooLate, MaxAhead, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// CheckDelay reports why d cannot delay a deletion: negative, or more than
// MaxAhead.
func CheckDelay(d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%s is negative: %w", d, ErrTooEarly)
	case d > MaxAhead:
		return fmt.Errorf("%s is %w: more than %s", d, ErrTooLate, MaxAhead)
	}
	return nil
}

// keyGrace holds the fleet's grace period in milliseconds, set by the
// workers (--grace): the least time between any request and its first
// call, during which it can be cancelled.
const keyGrace = "qfpurge:fleet:grace"

// SetGrace records the fleet's grace period; zero removes it.
func SetGrace(ctx context.Context, rdb redis.UniversalClient, d time.Duration) error {
	if d <= 0 {
		return rdb.Del(ctx, keyGrace).Err()
	}
	return rdb.Set(ctx, keyGrace, d.Milliseconds(), 0).Err()
}

// Grace reads the fleet's grace period (zero when none is set).
func Grace(ctx context.Context, rdb redis.UniversalClient) (time.Duration, error) {
	ms, err := rdb.Get(ctx, keyGrace).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the fleet's grace period: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}
