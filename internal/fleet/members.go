package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyMembers holds the live workers' configured modes: "<worker> <mode>"
// scored by the worker's last heartbeat (unix ms).
const keyMembers = "qfpurge:api:workers"

// memberTTL is how long a worker that stopped beating still counts: three
// missed heartbeats.
const memberTTL = 45 * time.Second

// Heartbeat is how often a member says it is alive.
const Heartbeat = 15 * time.Second

// ErrAPIConflict: this worker's configured API contradicts the fleet's.
var ErrAPIConflict = errors.New("the fleet deletes through another Qianfan API")

// joinScript drops stale members, refuses a mode other than the live
// members' (and an explicit v1 once the fleet switched to V2), and adds the
// member: one step, so two workers starting at once cannot both pass.
// KEYS: members, switch. ARGV: member, mode, now ms, stale-before ms.
var joinScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
if ARGV[2] == 'v1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return 'switched'
end
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local name, mode = string.match(m, '^(.*) (%S+)$')
  if name ~= ARGV[1] and mode ~= ARGV[2] then
    return m
  end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1] .. ' ' .. ARGV[2])
return ''
`)

// Join enters this worker into the fleet with its configured mode, or
// returns an error wrapping ErrAPIConflict that names the conflict: one fleet
// on one Redis deletes through one API. A worker set to v2 beside workers
// set to v1 sends int IDs V2 cannot take; a v1 worker after an auto fleet
// switched to V2 calls a V1 that is gone.
func (s *APIModeStore) Join(ctx context.Context, worker string, now time.Time) error {
	res, err := joinScript.Run(ctx, s.rdb, []string{keyMembers, keyAPIMode}, worker, string(s.mode),
		now.UnixMilli(), now.Add(-memberTTL).UnixMilli()).Text()
	if err != nil {
		return fmt.Errorf("fleet: api mode: join the fleet: %w", err)
	}
	switch {
	case res == "":
		return nil
	case res == "switched":
		reason, at, _ := s.Switched(ctx)
		return fmt.Errorf("%w: --qianfan-api v1, but the fleet switched to V2 at %s (%s); run with auto or v2, or delete the Redis key %s to try V1 again",
			ErrAPIConflict, at.UTC().Format(time.RFC3339), reason, keyAPIMode)
	}
	name, mode, _ := strings.Cut(res, " ")
	return fmt.Errorf("%w: this worker is set to --qianfan-api %s, but worker %s on the same Redis runs with %s; give every worker the same setting (QFPURGE_QIANFAN_API)",
		ErrAPIConflict, s.mode, name, mode)
}

// Leave takes this worker out of the fleet.
func (s *APIModeStore) Leave(ctx context.Context, worker string) error {
	return s.rdb.ZRem(ctx, keyMembers, worker+" "+string(s.mode)).Err()
}
