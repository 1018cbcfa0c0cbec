package fleet

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
	keyPause  = "qfpurge:pause"        // hash: reason, since (unix ms), state, tries
	keyCanary = "qfpurge:pause:canary" // the one call allowed while probing
	keyProbe  = "qfpurge:pause:probe"  // lock of the worker probing
)

// PauseState is where the fleet stands.
type PauseState string

// The states.
const (
	Running PauseState = ""        // deletions go on
	Paused  PauseState = "paused"  // no delete call is made
	Probing PauseState = "probing" // the credentials read again: one delete call may test them
)

// PauseStatus is the pause as stored.
type PauseStatus struct {
	State  PauseState `json:"state"`
	Reason string     `json:"reason,omitempty"`
	Since  time.Time  `json:"since,omitzero"`
	// Tries counts canaries that failed since the pause began.
	Tries int `json:"tries,omitempty"`
	// Manual: an operator paused; only an operator lifts it.
	Manual bool `json:"manual,omitempty"`
}

// PauseStore reads and changes the pause.
type PauseStore struct {
	rdb   redis.UniversalClient
	clock Clock
}

// NewPauseStore returns a PauseStore on rdb.
func NewPauseStore(rdb redis.UniversalClient) *PauseStore {
	return &PauseStore{rdb: rdb, clock: SystemClock{}}
}

// WithClock makes the store stamp pauses with c; it returns s.
func (s *PauseStore) WithClock(c Clock) *PauseStore { s.clock = Or(c); return s }

// Status returns the current pause (State Running when none).
func (s *PauseStore) Status(ctx context.Context) (PauseStatus, error) {
	m, err := s.rdb.HGetAll(ctx, keyPause).Result()
	if err != nil {
		return PauseStatus{}, fmt.Errorf("fleet: pause: %w", err)
	}
	st := PauseStatus{State: PauseState(m["state"]), Reason: m["reason"]}
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
func (s *PauseStore) Pause(ctx context.Context, reason string) (bool, error) {
	return s.pause(ctx, reason, "0")
}

// PauseManual pauses like Pause, but no probe resumes it: only Resume does.
func (s *PauseStore) PauseManual(ctx context.Context, reason string) (bool, error) {
	return s.pause(ctx, reason, "1")
}

func (s *PauseStore) pause(ctx context.Context, reason, manual string) (bool, error) {
	n, err := pauseScript.Run(ctx, s.rdb, []string{keyPause, keyCanary}, reason, s.clock.Now().UnixMilli(), manual).Int()
	if err != nil {
		return false, fmt.Errorf("fleet: pause: %w", err)
	}
	return n == 1, nil
}

// Probe moves a paused fleet to probing: one delete call may go (Canary).
func (s *PauseStore) Probe(ctx context.Context) error {
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, keyPause, "state", string(Probing))
	pipe.Del(ctx, keyCanary)
	_, err := pipe.Exec(ctx)
	return err
}

// Canary claims the one delete call allowed while probing; it reports
// whether this caller got it. A claim lapses after ttl (a worker that died
// with it).
func (s *PauseStore) Canary(ctx context.Context, taskID string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, keyCanary, taskID, ttl).Result()
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// ReleaseCanary gives up taskID's turn to test the credentials (it made no
// call: its batch waited for something else), so another batch takes it
// now rather than when the turn expires.
func (s *PauseStore) ReleaseCanary(ctx context.Context, taskID string) error {
	return releaseScript.Run(ctx, s.rdb, []string{keyCanary}, taskID).Err()
}

// Resume lets the fleet delete again; it reports whether deletions were
// paused until now.
func (s *PauseStore) Resume(ctx context.Context) (bool, error) {
	pipe := s.rdb.TxPipeline()
	n := pipe.Del(ctx, keyPause)
	pipe.Del(ctx, keyCanary)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("fleet: pause: %w", err)
	}
	return n.Val() > 0, nil
}

// ErrNotPaused is returned by Lift when nothing is paused.
var ErrNotPaused = errors.New("deletions are not paused")
