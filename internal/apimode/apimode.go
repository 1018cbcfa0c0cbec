// Package apimode says which Qianfan API the fleet deletes through. V1's
// batchDelete is deprecated and may stop serving; V2 deletes one ID per
// call. With Auto the fleet speaks V1 until V1 answers that it is gone, then
// every worker switches to V2 at once, through a flag in Redis.
package apimode

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is a configured or effective API.
type Mode string

// The modes.
const (
	V1   Mode = "v1"
	V2   Mode = "v2"
	Auto Mode = "auto" // V1 until it is gone, then V2 for the whole fleet
)

// Parse accepts v1, v2 and auto.
func Parse(s string) (Mode, error) {
	switch m := Mode(s); m {
	case V1, V2, Auto:
		return m, nil
	}
	return "", fmt.Errorf("unknown API %q: want v1, v2 or auto", s)
}

// key holds the fleet's switch: reason and time (unix ms), once V1 is gone.
const key = "qfpurge:api:v2"

// Store reads and sets the fleet's switch.
type Store struct {
	rdb  redis.UniversalClient
	mode Mode
}

// NewStore returns a Store for the configured mode.
func NewStore(rdb redis.UniversalClient, mode Mode) *Store { return &Store{rdb: rdb, mode: mode} }

// Configured is the mode the worker was started with.
func (s *Store) Configured() Mode { return s.mode }

// Effective is the API to call now: the configured one, or for Auto, V2
// once the fleet has switched.
func (s *Store) Effective(ctx context.Context) (Mode, error) {
	if s.mode != Auto {
		return s.mode, nil
	}
	n, err := s.rdb.Exists(ctx, key).Result()
	if err != nil {
		return "", fmt.Errorf("apimode: %w", err)
	}
	if n > 0 {
		return V2, nil
	}
	return V1, nil
}

// Switch moves an Auto fleet to V2 for good; it reports whether this call
// made the switch (so it is said once, loudly).
func (s *Store) Switch(ctx context.Context, reason string) (bool, error) {
	ok, err := s.rdb.HSetNX(ctx, key, "reason", reason).Result()
	if err != nil {
		return false, fmt.Errorf("apimode: %w", err)
	}
	if ok {
		s.rdb.HSet(ctx, key, "at", time.Now().UnixMilli())
	}
	return ok, nil
}

// Switched returns why and when the fleet switched to V2 (zero time: not).
func (s *Store) Switched(ctx context.Context) (string, time.Time, error) {
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil || len(m) == 0 {
		return "", time.Time{}, err
	}
	var ms int64
	fmt.Sscan(m["at"], &ms)
	return m["reason"], time.UnixMilli(ms), nil
}
