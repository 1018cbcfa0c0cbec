package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
		out  string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{fmt.Errorf("parse: %w", flag.ErrHelp), 0, ""},
		{Usagef("unknown command %q", "x"), 2, "cmd: unknown command \"x\"\n"},
		{fmt.Errorf("wrapped: %w", Usage(errors.New("bad flag"))), 2, "cmd: wrapped: bad flag\n"},
		{errors.New("redis down"), 1, "cmd: redis down\n"},
	} {
		var b bytes.Buffer
		if got := Status("cmd", tc.err, &b); got != tc.want || b.String() != tc.out {
			t.Errorf("Status(%v) = %d, %q; want %d, %q", tc.err, got, b.String(), tc.want, tc.out)
		}
	}
	if Usage(nil) != nil {
		t.Error("Usage(nil) is not nil")
	}
}

func TestConnectRedis(t *testing.T) {
	ctx := context.Background()
	if _, err := ConnectRedis(ctx, "http://127.0.0.1:6379"); Status("cmd", err, io.Discard) != 2 {
		t.Errorf("a malformed URL: %v, want a usage error", err)
	}
	// No URL: never a guessed Redis, but a usage error saying how to give one.
	if _, err := ConnectRedis(ctx, ""); Status("cmd", err, io.Discard) != 2 || !strings.Contains(err.Error(), "set REDIS_URL") {
		t.Errorf("no URL: %v, want a usage error naming REDIS_URL", err)
	}
	// Port 1 on loopback refuses at once: a runtime failure, not usage.
	if _, err := ConnectRedis(ctx, "redis://127.0.0.1:1/0"); err == nil || Status("cmd", err, io.Discard) != 1 {
		t.Errorf("an unreachable Redis: %v, want a runtime failure", err)
	}
}
