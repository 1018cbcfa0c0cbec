package redisconn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/redisconn"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// TestLoggerIsRateLimitedJSON: go-redis's lines come out in the process's
// format, a few at once and then one per interval with a count of the rest.
func TestLoggerIsRateLimitedJSON(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	g := redisconn.NewLogger(slog.New(slog.NewJSONHandler(&out, nil)).With("component", "redis"), 100*time.Millisecond, 2)
	now := time.Now()
	g.Now = func() time.Time { return now }
	for range 81 {
		g.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, "connection refused")
	}
	now = now.Add(120 * time.Millisecond)
	g.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, "connection refused")
	lines := out.lines()
	if len(lines) != 3 {
		t.Fatalf("%d lines for 82 messages, want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var last struct {
		Level, Msg, Component string
		Suppressed            int
	}
	if err := json.Unmarshal([]byte(lines[2]), &last); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[2])
	}
	if last.Level != "WARN" || last.Msg != "redis: connection pool: failed to dial after 5 attempts: connection refused" ||
		last.Component != "redis" || last.Suppressed != 79 {
		t.Errorf("line %+v", last)
	}
}
