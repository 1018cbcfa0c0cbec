// Package fleetlimit is a fleet-wide QPS budget: every worker sharing one
// Redis waits on the same GCRA limiter (github.com/go-redis/redis_rate), so
// N replicas together never send more calls per second than the budget.
//
// The limiter satisfies qianfan.Limiter; give it to the client with
// qianfan.WithLimiter and the client waits on it before every attempt,
// retries included.
package fleetlimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// KeyPrefix starts every limiter key (redis_rate adds its own "rate:" in
// front, so the Redis key is "rate:qfpurge:qps:<hash>").
const KeyPrefix = "qfpurge:qps:"

// DefaultHeadroom is how much longer than 1/QPS the limiter spaces calls.
const DefaultHeadroom = 0.05

// Key names the budget of one API endpoint and credential: a hash of the
// base URL and the access key. The access key itself is never stored.
func Key(baseURL, accessKey string) string {
	sum := sha256.Sum256([]byte(baseURL + "\x00" + accessKey))
	return KeyPrefix + hex.EncodeToString(sum[:12])
}

// Config configures a Limiter.
type Config struct {
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
	// Key is the budget's name, usually Key(baseURL, accessKey). Defaults
	// to KeyPrefix+"default".
	Key string
	// Observe is told how long each Wait waited (0 when the call could go at
	// once). Defaults to nil: nothing is told.
	Observe func(wait time.Duration)
}

// Limiter is a fleet-wide rate limiter on Redis. It is safe for concurrent
// use.
type Limiter struct {
	rl    *redis_rate.Limiter
	limit redis_rate.Limit
	cfg   Config
}

// New returns a Limiter on rdb.
func New(rdb redis.UniversalClient, cfg Config) (*Limiter, error) {
	if cfg.QPS <= 0 {
		return nil, fmt.Errorf("fleetlimit: QPS %g must be positive", cfg.QPS)
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
		cfg.Key = KeyPrefix + "default"
	}
	interval := time.Duration(float64(time.Second) * (1 + cfg.Headroom) / cfg.QPS)
	if interval < time.Microsecond {
		return nil, fmt.Errorf("fleetlimit: QPS %g is too high", cfg.QPS)
	}
	return &Limiter{
		rl: redis_rate.NewLimiter(rdb),
		// One call per interval, with Burst calls allowed at once: the GCRA
		// emission interval is Period/Rate.
		limit: redis_rate.Limit{Rate: 1, Burst: cfg.Burst, Period: interval},
		cfg:   cfg,
	}, nil
}

// Interval is the time the limiter puts between calls across the fleet.
func (l *Limiter) Interval() time.Duration { return l.limit.Period }

// Wait blocks until the fleet's budget allows one more call, or ctx is done.
// A Redis failure is returned as is: no call goes out unpaced.
func (l *Limiter) Wait(ctx context.Context) error {
	start := time.Now()
	for {
		res, err := l.rl.Allow(ctx, l.cfg.Key, l.limit)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("fleetlimit: %w", err)
		}
		if res.Allowed > 0 {
			if l.cfg.Observe != nil {
				l.cfg.Observe(time.Since(start))
			}
			return nil
		}
		wait := max(res.RetryAfter, time.Millisecond)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
