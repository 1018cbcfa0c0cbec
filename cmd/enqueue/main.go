// Command enqueue hands Qianfan model deletions to qfpurge workers.
//
//	enqueue [flags] ID...
//	enqueue [flags] -f ids.txt      (one ID per line, or JSON arrays / JSON lines)
//	enqueue [flags] -f - < ids.json
//
// A bare number is an int ID unless --string; JSON keeps its type. Both types
// may be mixed: they are split into separate batches. Any invalid ID rejects
// the whole input with its line, and nothing is enqueued.
//
// Exit status: 0 enqueued, 1 runtime failure (e.g. Redis unreachable), 2 bad
// input or usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/producer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// go-redis logs every failed dial; the error returned says it once.
	redis.SetLogger(quietLogger{})
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// usageError is bad input: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "enqueue:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// progressThreshold is the input size from which a terminal gets a progress bar.
const progressThreshold = 20_000

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: enqueue [flags] [ID ...]\n\nEnqueues Qianfan model deletions for qfpurge workers.\n\nflags:")
		fs.PrintDefaults()
	}
	var (
		file      = fs.String("f", "", "read IDs from `FILE` (- for stdin): one per line, or JSON arrays / JSON lines")
		kindFlag  = fs.String("kind", "model", "what to delete: model or version")
		asString  = fs.Bool("string", false, "treat bare numbers as string IDs")
		in        = fs.Duration("in", 0, "delete after this `DURATION` (e.g. 2h)")
		at        = fs.String("at", "", "delete at this `TIME` (RFC 3339, e.g. 2026-12-01T03:00:00+08:00)")
		asJSON    = fs.Bool("json", false, "print what was enqueued as JSON")
		redisURL  = fs.String("redis-url", cmpOr(getenv("REDIS_URL"), "redis://127.0.0.1:6379"), "Redis URL (env REDIS_URL)")
		batchSize = fs.Int("batch-size", tasks.DefaultBatchSize, "most IDs per API call; keep equal to the workers' --batch-size")
		shards    = fs.Int("shards", producer.DefaultShards, fmt.Sprintf("groups per kind and ID type for small jobs (1-%d)", tasks.MaxShards))
		key       = fs.String("key", "", "idempotency key: enqueuing the same key again adds nothing")
		progress  = fs.String("progress", "auto", "progress bar on stderr: auto (terminal and large input), always or never")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	kind, err := producer.ParseKind(*kindFlag)
	if err != nil {
		return usageError{fmt.Errorf("--kind: %w", err)}
	}
	var processAt time.Time
	switch {
	case *in < 0:
		return usageError{errors.New("--in must not be negative")}
	case *in > 0 && *at != "":
		return usageError{errors.New("give --in or --at, not both")}
	case *in > 0:
		processAt = time.Now().Add(*in)
	case *at != "":
		if processAt, err = time.Parse(time.RFC3339, *at); err != nil {
			return usageError{fmt.Errorf("--at %q is not RFC 3339 (like 2026-12-01T03:00:00+08:00)", *at)}
		}
	}
	if *progress != "auto" && *progress != "always" && *progress != "never" {
		return usageError{fmt.Errorf("--progress %q: want auto, always or never", *progress)}
	}

	ids, err := readIDs(fs.Args(), *file, *asString, stdin)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usageError{errors.New("no IDs given: pass them as arguments or with -f FILE")}
	}

	rdb, err := redisconn.Open(*redisURL)
	if err != nil {
		return usageError{err}
	}
	defer rdb.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("cannot reach Redis %s: %w (is REDIS_URL right, and is a worker or Redis running?)", redisconn.Redact(*redisURL), err)
	}
	p, err := producer.New(rdb, producer.Config{BatchSize: *batchSize, Shards: *shards})
	if err != nil {
		return usageError{err}
	}
	req := producer.Request{Kind: kind, IDs: ids, ProcessAt: processAt, Key: *key}
	if bar := newBar(*progress, len(ids), stderr); bar != nil {
		req.Progress = func(done int) { _ = bar.Set(done) }
		defer bar.Finish()
	}
	start := time.Now()
	rc, err := p.Enqueue(ctx, req)
	if err != nil {
		var ie *producer.InvalidIDsError
		if errors.As(err, &ie) {
			return usageError{err}
		}
		if len(rc.Batches) > 0 {
			// Say what went in, so a re-run is an informed choice.
			report(stdout, rc, *asJSON, time.Since(start))
		}
		return fmt.Errorf("%w (Redis %s)", err, redisconn.Redact(*redisURL))
	}
	report(stdout, rc, *asJSON, time.Since(start))
	return nil
}

// readIDs gathers IDs from arguments and the file, reporting every invalid
// one with where it came from.
func readIDs(args []string, file string, asString bool, stdin io.Reader) ([]producer.ID, error) {
	var (
		ids []producer.ID
		bad []string
	)
	for i, a := range args {
		id, err := modelid.ParseID(a, asString)
		if err != nil {
			bad = append(bad, fmt.Sprintf("argument %d %q: %v", i+1, a, err))
			continue
		}
		ids = append(ids, id)
	}
	if file != "" {
		var r io.Reader = stdin
		name := "stdin"
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return nil, usageError{err}
			}
			defer f.Close()
			r, name = f, file
		}
		got, err := producer.ParseIDs(r, asString)
		var ie *producer.InvalidIDsError
		switch {
		case errors.As(err, &ie):
			for _, v := range ie.Invalid {
				bad = append(bad, fmt.Sprintf("%s:%d %q: %s", name, v.Index, v.Text, v.Reason))
			}
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		ids = append(ids, got...)
	}
	if len(bad) > 0 {
		const show = 20
		msg := fmt.Sprintf("%d invalid ID(s), nothing enqueued:\n  %s", len(bad), strings.Join(bad[:min(len(bad), show)], "\n  "))
		if len(bad) > show {
			msg += fmt.Sprintf("\n  ... and %d more", len(bad)-show)
		}
		return nil, usageError{errors.New(msg)}
	}
	return ids, nil
}

func newBar(mode string, total int, stderr io.Writer) *progressbar.ProgressBar {
	f, isFile := stderr.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	if mode == "never" || (mode == "auto" && (!tty || total < progressThreshold)) {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("enqueuing IDs"),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func report(w io.Writer, rc producer.Receipt, asJSON bool, took time.Duration) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rc)
		return
	}
	var ready, grouped, existing int
	for _, b := range rc.Batches {
		switch {
		case b.Existing:
			existing++
		case b.Group != "":
			grouped++
		default:
			ready++
		}
	}
	fmt.Fprintf(w, "enqueued %d %s IDs (%d int, %d string; %d duplicates dropped) as %d tasks: %d ready batches, %d jobs waiting in groups",
		rc.IDs, rc.Kind, rc.IntIDs, rc.StringIDs, rc.Duplicates, len(rc.Batches), ready, grouped)
	if existing > 0 {
		fmt.Fprintf(w, ", %d already enqueued under this key", existing)
	}
	fmt.Fprintf(w, " in %s\n", took.Round(time.Millisecond))
	const show = 10
	for i, b := range rc.Batches {
		if i == show {
			fmt.Fprintf(w, "  ... and %d more tasks (--json lists all)\n", len(rc.Batches)-show)
			break
		}
		where := "ready"
		if b.Group != "" {
			where = "group " + b.Group
		}
		if !b.At.IsZero() {
			where += " at " + b.At.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  task %s  %-6s %4d IDs  %s\n", b.TaskID, b.IDType, b.IDs, where)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
