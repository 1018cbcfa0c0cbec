// Package cli is what qfpurge's commands share about being commands: one
// usage-error type, one mapping from a run's error to an exit status (0
// done, 1 runtime failure, 2 bad usage or input), one main, one way to
// open Redis (never a guessed one), flags resolved from the environment and
// a config file, and one-line answers to mistyped flags.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/redisconn"
)

// UsageError is a mistake in the command line or its input: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usage wraps err as a UsageError (nil stays nil).
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return UsageError{err}
}

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// Status prints err (if any) as "name: err" to stderr and returns the exit
// status: 0 for nil or a -h request, 2 for a UsageError, 1 otherwise.
func Status(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(UsageError)):
		fmt.Fprintln(stderr, name+":", err)
		return 2
	}
	fmt.Fprintln(stderr, name+":", err)
	return 1
}

// Main runs a command: run gets a context cancelled on SIGINT or SIGTERM,
// and its error becomes the exit status (see Status).
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	os.Exit(Status(name, err, os.Stderr))
}

// ErrNoRedis is what a command says when it was given no Redis: a command
// never guesses one, since a wrong guess would enqueue or purge elsewhere.
var ErrNoRedis = UsageError{errors.New("no Redis: set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379/0) or pass --redis-url")}

// ConnectRedis opens Redis for a command and checks that it answers
// (redisconn.Connect): no URL or a malformed one is a UsageError, an
// unreachable Redis a runtime failure.
func ConnectRedis(ctx context.Context, rawURL string) (redis.UniversalClient, error) {
	if rawURL == "" {
		return nil, ErrNoRedis
	}
	rdb, err := redisconn.Connect(ctx, rawURL)
	if errors.Is(err, redisconn.ErrBadURL) {
		return nil, Usage(err)
	}
	return rdb, err
}

// WhoAmI names the person or job running a command, user@host, for
// records of who asked.
func WhoAmI() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return name + "@" + host
}
