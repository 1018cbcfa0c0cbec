// Package pause holds the fleet's deletions when a problem that is no
// ID's fault stops every call: credentials rejected or revoked, permission
// lost, or (later) an API that no longer serves. Every worker sharing the
// Redis waits, with its batches queued and their retries unspent; a prober
// checks the credentials every interval with a read call and, once it works
// again, lets one delete call through (the canary) before the whole fleet
// resumes, so a key that may read but not delete is not retried by every
// worker at once. An operator can read and lift the pause (qfpurge pause).
package pause

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys.
const (
	key       = "qfpurge:pause"        // hash: reason, since (unix ms), state, tries
	keyCanary = "qfpurge:pause:canary" // the one call allowed while probing
	keyProbe  = "qfpurge:pause:probe"  // lock of the worker probing
)

// State is where the fleet stands.
type State string

// The states.
const (
	Running State = ""        // deletions go on
	Paused  State = "paused"  // no delete call is made
	Probing State = "probing" // the credentials read again: one delete call may test them
)

// Status is the pause as stored.
type Status struct {
	State  State     `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// Tries counts canaries that failed since the pause began.
	Tries int `json:"tries,omitempty"`
	// Manual: an operator paused; only an operator lifts it.
	Manual bool `json:"manual,omitempty"`
}

// Store reads and changes the pause.
type Store struct{ rdb redis.UniversalClient }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// Status returns the current pause (State Running when none).
func (s *Store) Status(ctx context.Context) (Status, error) {
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return Status{}, fmt.Errorf("pause: %w", err)
	}
	st := Status{State: State(m["state"]), Reason: m["reason"]}
	if ms, err := strconv.ParseInt(m["since"], 10, 64); err == nil {
		st.Since = time.UnixMilli(ms)
	}
	st.Tries, _ = strconv.Atoi(m["tries"])
	st.Manual = m["manual"] == "1"
	return st, nil
}

// pauseScript pauses unless already paused, keeping the first reason; a
// failed canary (probing) goes back to paused and counts a try. It returns
// 1 when this call paused a running fleet.
var pauseScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'paused' then return 0 end
if st == 'probing' then
  redis.call('HSET', KEYS[1], 'state', 'paused')
  redis.call('HINCRBY', KEYS[1], 'tries', 1)
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'paused', 'reason', ARGV[1], 'since', ARGV[2], 'tries', 0, 'manual', ARGV[3])
return 1
`)

// Pause stops the fleet's deletions for reason. It reports whether the fleet
// was running until now (so the caller says it once, loudly).
func (s *Store) Pause(ctx context.Context, reason string) (bool, error) {
	return s.pause(ctx, reason, "0")
}

// PauseManual pauses like Pause, but no probe resumes it: only Resume does.
func (s *Store) PauseManual(ctx context.Context, reason string) (bool, error) {
	return s.pause(ctx, reason, "1")
}

func (s *Store) pause(ctx context.Context, reason, manual string) (bool, error) {
	n, err := pauseScript.Run(ctx, s.rdb, []string{key, keyCanary}, reason, time.Now().UnixMilli(), manual).Int()
	if err != nil {
		return false, fmt.Errorf("pause: %w", err)
	}
	return n == 1, nil
}

// Probe moves a paused fleet to probing: one delete call may go (Canary).
func (s *Store) Probe(ctx context.Context) error {
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, key, "state", string(Probing))
	pipe.Del(ctx, keyCanary)
	_, err := pipe.Exec(ctx)
	return err
}

// Canary claims the one delete call allowed while probing; it reports
// whether this caller got it. A claim lapses after ttl (a worker that died
// with it).
func (s *Store) Canary(ctx context.Context, taskID string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, keyCanary, taskID, ttl).Result()
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// ReleaseCanary gives up taskID's turn to test the credentials (it made no
// call: its batch waited for something else), so another batch takes it
// now rather than when the turn expires.
func (s *Store) ReleaseCanary(ctx context.Context, taskID string) error {
	return releaseScript.Run(ctx, s.rdb, []string{keyCanary}, taskID).Err()
}

// Resume lets the fleet delete again; it reports whether deletions were
// paused until now.
func (s *Store) Resume(ctx context.Context) (bool, error) {
	pipe := s.rdb.TxPipeline()
	n := pipe.Del(ctx, key)
	pipe.Del(ctx, keyCanary)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("pause: %w", err)
	}
	return n.Val() > 0, nil
}

// ErrNotPaused is returned by Lift when nothing is paused.
var ErrNotPaused = errors.New("deletions are not paused")
