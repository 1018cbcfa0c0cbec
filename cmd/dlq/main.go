// Command dlq reads and acts on qfpurge's dead letters: the IDs Qianfan
// refused for good (e.g. "500001 param invalid") or that ran out of retries.
//
//	dlq list [--json] [--limit N] [--after ENTRY]   show dead letters, oldest first
//	dlq count                                      how many there are
//	dlq export [-o FILE]                           every dead letter as JSON lines
//	dlq requeue (--all | ENTRY...)                 enqueue the IDs again and remove the entries
//	dlq purge (--all --yes | ENTRY...)             remove entries without requeuing
//
// Dead letters live in the Redis stream qfpurge:deadletters, which has no
// cap; each is also an archived task in Asynq (shown by asynqmon and the
// asynq CLI), whose archive keeps only the newest 10,000 per queue.
//
// Exit status: 0 success, 1 runtime failure, 2 usage.
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
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// go-redis logs every failed dial; the error returned says it once.
	redis.SetLogger(quietLogger{})
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.Status("dlq", err, os.Stderr))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

const usage = `usage: dlq [--redis-url URL] COMMAND [flags]

Environment: REDIS_URL (default redis://127.0.0.1:6379).

commands:
  list     show dead letters, oldest first (--json, --limit N, --after ENTRY)
  count    print how many dead letters there are
  export   write every dead letter as JSON lines (-o FILE, default stdout)
  requeue  enqueue dead IDs again and remove their entries (--all or ENTRY...)
  purge    remove entries without requeuing (--all --yes, or ENTRY...)`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage+"\n\nflags:"); fs.PrintDefaults() }
	// Shown without REDIS_URL's value: it may carry a password.
	redisURL := fs.String("redis-url", "", "Redis `URL` (default $REDIS_URL, else redis://127.0.0.1:6379)")
	batchSize := fs.Int("batch-size", tasks.DefaultBatchSize, "batch size for requeued IDs; keep equal to the workers'")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.Usage(err)
	}
	if *redisURL == "" {
		*redisURL = cmpOr(getenv("REDIS_URL"), "redis://127.0.0.1:6379")
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return cli.Usage(errors.New("no command given"))
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	sub := flag.NewFlagSet("dlq "+cmd, flag.ContinueOnError)
	sub.SetOutput(stderr)
	var (
		asJSON = sub.Bool("json", false, "print JSON")
		limit  = sub.Int64("limit", 100, "list at most this many")
		after  = sub.String("after", "", "list entries after this entry ID")
		out    = sub.String("o", "", "export to this `FILE` instead of stdout")
		all    = sub.Bool("all", false, "act on every dead letter")
		yes    = sub.Bool("yes", false, "confirm purging every dead letter")
	)
	switch cmd {
	case "list", "count", "export", "requeue", "purge":
	default:
		return cli.Usage(fmt.Errorf("unknown command %q\n%s", cmd, usage))
	}
	if err := sub.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.Usage(err)
	}

	rdb, err := redisconn.Open(*redisURL)
	if err != nil {
		return cli.Usage(err)
	}
	defer rdb.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("cannot reach Redis %s: %w", redisconn.Redact(*redisURL), err)
	}
	store := deadletter.NewStore(rdb)

	switch cmd {
	case "count":
		n, err := store.Count(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, n)
		return nil
	case "list":
		if *limit < 1 {
			return cli.Usage(errors.New("--limit must be at least 1"))
		}
		dls, err := store.List(ctx, *after, *limit)
		if err != nil {
			return err
		}
		return list(ctx, stdout, store, dls, *asJSON)
	case "export":
		w := stdout
		if *out != "" {
			f, err := os.Create(*out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		n, err := store.Export(ctx, w)
		if err != nil {
			return err
		}
		if *out != "" {
			fmt.Fprintf(stderr, "exported %s to %s\n", modelid.Plural(n, "dead letter", "dead letters"), *out)
		}
		return nil
	}

	// requeue and purge act on entries.
	entries, err := pick(ctx, store, sub.Args(), *all)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintln(stdout, "no dead letters")
		return nil
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if cmd == "purge" {
		if *all && !*yes {
			return cli.Usagef("purge --all removes %s for good; add --yes to confirm", modelid.Plural(len(entries), "dead letter", "dead letters"))
		}
		res, err := deadletter.Purge(ctx, store, insp, entries)
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(res)
		} else if res.Purged > 0 {
			fmt.Fprintf(stdout, "purged %s (%s removed)\n", modelid.Plural(res.Purged, "dead letter", "dead letters"), modelid.Plural(res.ArchivedDeleted, "archived task", "archived tasks"))
		}
		return err
	}
	p, err := enqueue.New(rdb, enqueue.Config{BatchSize: *batchSize})
	if err != nil {
		return cli.Usage(err)
	}
	res, err := deadletter.Requeue(ctx, store, func(ctx context.Context, k modelid.Kind, ids []modelid.ID) (enqueue.Receipt, error) {
		return p.Enqueue(ctx, enqueue.Request{Kind: k, IDs: ids})
	}, insp, entries)
	if *asJSON {
		_ = json.NewEncoder(stdout).Encode(res)
	} else {
		fmt.Fprintf(stdout, "requeued %s (%s removed)\n", modelid.Plural(res.Requeued, "dead letter", "dead letters"), modelid.Plural(res.ArchivedDeleted, "archived task", "archived tasks"))
		for _, s := range res.Skipped {
			fmt.Fprintf(stdout, "  left %s: %s\n", s.EntryID, s.Reason)
		}
	}
	return err
}

func pick(ctx context.Context, store *deadletter.Store, ids []string, all bool) ([]deadletter.Entry, error) {
	switch {
	case all && len(ids) > 0:
		return nil, cli.Usage(errors.New("give --all or entry IDs, not both"))
	case all:
		return store.All(ctx, 1000)
	case len(ids) == 0:
		return nil, cli.Usage(errors.New("name entry IDs (from dlq list) or --all"))
	}
	found, missing, err := store.Get(ctx, ids)
	if err != nil {
		return nil, cli.Usage(err)
	}
	if len(missing) > 0 {
		return nil, cli.Usage(fmt.Errorf("no dead letter with entry ID %s", strings.Join(missing, ", ")))
	}
	return found, nil
}

func list(ctx context.Context, w io.Writer, store *deadletter.Store, dls []deadletter.Entry, asJSON bool) error {
	if asJSON {
		if dls == nil {
			dls = []deadletter.Entry{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(dls)
	}
	total, err := store.Count(ctx)
	if err != nil {
		return err
	}
	if len(dls) == 0 {
		fmt.Fprintf(w, "no dead letters here (%d in all)\n", total)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tTIME\tKIND\tID\tREASON\tATTEMPTS\tTASK")
	for _, d := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.EntryID, d.At.Format(time.RFC3339), d.Kind, d.ID, d.Reason(), d.Attempts, d.TaskID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if int64(len(dls)) < total {
		fmt.Fprintf(w, "showing %d of %d; next page: dlq list --after %s\n", len(dls), total, dls[len(dls)-1].EntryID)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
