package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/authtoken"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// QuotaKeyPrefix starts the keys of the daily counts:
// qfpurge:quota:<token name>:<UTC date>.
const QuotaKeyPrefix = "qfpurge:quota:"

// quotaTTL outlives the day it counts, whatever the clocks' skew.
const quotaTTL = 48 * time.Hour

// reserveScript adds ARGV[1] to the day's count unless that would pass the
// cap ARGV[2]; it answers {1, count after} or {0, count before}. One script,
// so concurrent requests cannot both pass the cap.
var reserveScript = redis.NewScript(`
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if n > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return {0, n - tonumber(ARGV[1])}
end
return {1, n}
`)

// reservation is IDs counted against a token's day before they are
// enqueued; settle gives back those that were not.
type reservation struct {
	a   *API
	key string
	n   int
}

// quotaExceeded is the 429 answer.
type quotaExceeded struct {
	Error     string    `json:"error"`
	Token     string    `json:"token"`
	Limit     int64     `json:"limit"`
	Used      int64     `json:"used"`
	Requested int       `json:"requested"`
	ResetsAt  time.Time `json:"resets_at"`
}

// reserve counts n IDs against p's quota for the UTC day of now. Without a
// quota it counts nothing. It writes the error answer and returns false
// when the quota refuses or Redis fails.
func (a *API) reserve(ctx context.Context, w http.ResponseWriter, p authtoken.Principal, n int, now time.Time) (reservation, bool) {
	limit := p.Scope.MaxIDsPerDay
	if limit <= 0 || p.Scope.Full {
		return reservation{}, true
	}
	day := now.UTC()
	key := QuotaKeyPrefix + p.Name + ":" + day.Format(time.DateOnly)
	res, err := reserveScript.Run(ctx, a.d.Redis, []string{key}, n, limit, int64(quotaTTL/time.Second)).Int64Slice()
	if err != nil || len(res) != 2 {
		a.log.Error("quota not counted", "token", p.Name, "err", err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("cannot count the token's daily quota: %v", err), nil)
		return reservation{}, false
	}
	if res[0] == 0 {
		reset := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, time.UTC)
		why := fmt.Sprintf("token %q has enqueued %d of its %d IDs for %s (UTC); %d more would pass it", p.Name, res[1], limit, day.Format(time.DateOnly), n)
		if int64(n) > limit {
			why = fmt.Sprintf("token %q may enqueue %d IDs a day; this request holds %d: split it over days or raise max_ids_per_day", p.Name, limit, n)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(reset.Sub(now).Seconds())+1))
		writeJSON(w, http.StatusTooManyRequests, quotaExceeded{Error: why, Token: p.Name, Limit: limit, Used: res[1], Requested: n, ResetsAt: reset})
		return reservation{}, false
	}
	return reservation{a: a, key: key, n: n}, true
}

// settle gives back the reserved IDs that rc does not show enqueued: all of
// them when nothing went in, and those of batches that a repeated key met
// (they were counted the first time).
func (q reservation) settle(ctx context.Context, rc enqueue.Receipt) {
	if q.key == "" {
		return
	}
	enqueued := 0
	for _, b := range rc.Batches {
		if !b.Existing {
			enqueued += b.IDs
		}
	}
	back := q.n - min(enqueued, q.n)
	if back == 0 {
		return
	}
	// The request's own context may be done: the refund must still happen.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := q.a.d.Redis.DecrBy(ctx, q.key, int64(back)).Err(); err != nil {
		q.a.log.Warn("quota not refunded", "key", q.key, "ids", back, "err", err)
	}
}

// kindList is a scope's kinds for messages.
func kindList(ks []modelid.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
