package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// APIMode is a configured or effective API.
type APIMode string

// The modes.
const (
	V1   APIMode = "v1"
	V2   APIMode = "v2"
	Auto APIMode = "auto" // V1 until it is gone, then V2 for the whole fleet
)

// ParseAPIMode accepts v1, v2 and auto.
func ParseAPIMode(s string) (APIMode, error) {
	switch m := APIMode(s); m {
	case V1, V2, Auto:
		return m, nil
	}
	return "", fmt.Errorf("unknown API %q: want v1, v2 or auto", s)
}

// keyAPIMode holds the fleet's switch: reason and time (unix ms), once V1 is gone.
const keyAPIMode = "qfpurge:api:v2"

// APIModeStore reads and sets the fleet's switch.
type APIModeStore struct {
	rdb   redis.UniversalClient
	mode  APIMode
	clock Clock
}

// NewAPIModeStore returns an APIModeStore for the configured mode.
func NewAPIModeStore(rdb redis.UniversalClient, mode APIMode) *APIModeStore {
	return &APIModeStore{rdb: rdb, mode: mode, clock: SystemClock{}}
}

// WithClock makes the store stamp the switch with c; it returns s.
func (s *APIModeStore) WithClock(c Clock) *APIModeStore { s.clock = Or(c); return s }

// Configured is the mode the worker was started with.
func (s *APIModeStore) Configured() APIMode { return s.mode }

// Effective is the API to call now: the configured one, or for Auto, V2
// once the fleet has switched.
func (s *APIModeStore) Effective(ctx context.Context) (APIMode, error) {
	if s.mode != Auto {
		return s.mode, nil
	}
	n, err := s.rdb.Exists(ctx, keyAPIMode).Result()
	if err != nil {
		return "", fmt.Errorf("fleet: api mode: %w", err)
	}
	if n > 0 {
		return V2, nil
	}
	return V1, nil
}

// Switch moves an Auto fleet to V2 for good; it reports whether this call
// made the switch (so it is said once, loudly).
func (s *APIModeStore) Switch(ctx context.Context, reason string) (bool, error) {
	ok, err := s.rdb.HSetNX(ctx, keyAPIMode, "reason", reason).Result()
	if err != nil {
		return false, fmt.Errorf("fleet: api mode: %w", err)
	}
	if ok {
		s.rdb.HSet(ctx, keyAPIMode, "at", s.clock.Now().UnixMilli())
	}
	return ok, nil
}

// Switched returns why and when the fleet switched to V2 (zero time: not).
func (s *APIModeStore) Switched(ctx context.Context) (string, time.Time, error) {
	m, err := s.rdb.HGetAll(ctx, keyAPIMode).Result()
	if err != nil || len(m) == 0 {
		return "", time.Time{}, err
	}
	var ms int64
	fmt.Sscan(m["at"], &ms)
	return m["reason"], time.UnixMilli(ms), nil
}
