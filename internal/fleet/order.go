package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyOrder is a counter every fleet-wide event that must be ordered takes a
// number from. It shares the inventory's hash tag, so a cluster keeps it
// beside the listings it orders.
const keyOrder = "qfpurge:{inv}:order"

// Stamp returns the next number of the fleet's order: a stamp taken after
// another one returned is greater, across workers and clocks. "A listing
// started after the answer was lost" compares stamps, never wall-clock
// times, whose resolution and skew cannot order two events a millisecond
// apart.
func Stamp(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	n, err := rdb.Incr(ctx, keyOrder).Result()
	if err != nil {
		return 0, fmt.Errorf("fleet: take an order stamp: %w", err)
	}
	return n, nil
}

// Clock tells the time. Everything whose decisions depend on time takes
// one, so tests move time instead of sleeping through it.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Or returns c, or the wall clock when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return SystemClock{}
	}
	return c
}
