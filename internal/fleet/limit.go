package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// LimitKeyPrefix starts every limiter key: "qfpurge:qps:<hash>".
const LimitKeyPrefix = "qfpurge:qps:"

// DefaultHeadroom is how much longer than 1/QPS the limiter spaces calls.
const DefaultHeadroom = 0.05

// LimitKey names the budget of one API endpoint and credential: a hash of the
// base URL and the access key. The access key itself is never stored.
func LimitKey(baseURL, accessKey string) string {
	sum := sha256.Sum256([]byte(baseURL + "\x00" + accessKey))
	return LimitKeyPrefix + hex.EncodeToString(sum[:12])
}

// LimitConfig configures a Limiter.
type LimitConfig struct {
	// QPS is the most calls per second across every process using the same
	// Key on the same Redis. It must be positive.
	QPS float64
	// Burst is how many calls may go at once after an idle spell. A burst
	// above 1 lets a fleet briefly exceed QPS within one second, which a
	// server counting calls per second rejects, so it defaults to 1.
	Burst int
	// Headroom spaces calls (1+Headroom)/QPS apart rather than 1/QPS, so
	// network jitter between the limiter and the API does not push an extra
	// call into the API's one-second window. Defaults to DefaultHeadroom
	// (5%); negative means none.
	Headroom float64
	// Key is the budget's name, usually LimitKey(baseURL, accessKey). Defaults
	// to LimitKeyPrefix+"default".
	Key string
	// Observe is told how long each Wait waited (0 when the call could go at
	// once). Defaults to nil: nothing is told.
	Observe func(wait time.Duration)
}

// Limiter is a fleet-wide rate limiter on Redis. It is safe for concurrent
// use.
type Limiter struct {
	rdb      redis.UniversalClient
	interval time.Duration
	cfg      LimitConfig
}

// NewLimiter returns a Limiter on rdb.
func NewLimiter(rdb redis.UniversalClient, cfg LimitConfig) (*Limiter, error) {
	if cfg.QPS <= 0 {
		return nil, fmt.Errorf("fleet: limit: QPS %g must be positive", cfg.QPS)
	}
	if cfg.Burst < 1 {
		cfg.Burst = 1
	}
	switch {
	case cfg.Headroom == 0:
		cfg.Headroom = DefaultHeadroom
	case cfg.Headroom < 0:
		cfg.Headroom = 0
	}
	if cfg.Key == "" {
		cfg.Key = LimitKeyPrefix + "default"
	}
	interval := time.Duration(float64(time.Second) * (1 + cfg.Headroom) / cfg.QPS)
	if interval < time.Microsecond {
		return nil, fmt.Errorf("fleet: limit: QPS %g is too high", cfg.QPS)
	}
	return &Limiter{rdb: rdb, interval: interval, cfg: cfg}, nil
}

// Interval is the time the limiter puts between calls across the fleet.
func (l *Limiter) Interval() time.Duration { return l.interval }

// reserveScript hands out the fleet's call slots one interval apart, by
// Redis's clock (so workers' clocks do not matter): a caller gets the
// earliest free slot and the time to wait for it. Every slot is taken by
// someone (a GCRA that only says "not yet" loses the slots nobody polls for
// at the right moment). Burst lets that many calls go at once after an
// idle spell. KEYS[1]: the budget; ARGV: interval and burst (µs, count).
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
local earliest = now - (tonumber(ARGV[2]) - 1) * interval
if slot < earliest then slot = earliest end
redis.call('SET', KEYS[1], string.format('%.0f', slot + interval), 'PX', math.ceil(interval * tonumber(ARGV[2]) / 1000) + 1000)
if slot < now then return 0 end
return slot - now
`)

// Wait blocks until the fleet's budget allows one more call, or ctx is done.
// A Redis failure is returned as is: no call goes out unpaced.
func (l *Limiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	us, err := reserveScript.Run(ctx, l.rdb, []string{l.cfg.Key}, l.interval.Microseconds(), l.cfg.Burst).Int64()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("fleet: limit: %w", err)
	}
	wait := time.Duration(us) * time.Microsecond
	if l.cfg.Observe != nil {
		l.cfg.Observe(wait)
	}
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
