package redisconn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Logger takes go-redis's own log lines (a failed dial, a pool or sentinel
// notice), which go-redis otherwise prints to stderr past the process's log
// format, once per failed dial. It writes them to a slog.Logger at WARN, at
// most burst lines at once and then one per interval, each saying how many
// were dropped since the last.
type Logger struct {
	l       *slog.Logger
	lim     *rate.Limiter
	dropped atomic.Int64
	// Now is the clock the rate limit reads. Defaults to time.Now.
	Now func() time.Time
}

// NewLogger returns a Logger writing to l.
func NewLogger(l *slog.Logger, interval time.Duration, burst int) *Logger {
	return &Logger{l: l, lim: rate.NewLimiter(rate.Every(interval), burst), Now: time.Now}
}

// Printf implements go-redis's logging interface.
func (g *Logger) Printf(ctx context.Context, format string, args ...any) {
	if !g.lim.AllowN(g.Now(), 1) {
		g.dropped.Add(1)
		return
	}
	msg := strings.TrimPrefix(fmt.Sprintf(format, args...), "redis: ")
	var attrs []any
	if n := g.dropped.Swap(0); n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	g.l.WarnContext(ctx, "redis: "+msg, attrs...)
}

// RouteLogs makes l the process's go-redis logger: one line every 10s at
// most after a burst of 3, whatever the outage. go-redis has one logger per
// process, so only mains call this.
func RouteLogs(l *slog.Logger) { redis.SetLogger(NewLogger(l, 10*time.Second, 3)) }

// Silence drops go-redis's own log lines, for commands whose returned error
// already says what went wrong.
func Silence() { redis.SetLogger(quiet{}) }

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
