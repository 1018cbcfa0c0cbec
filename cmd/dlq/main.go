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
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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
	// go-redis logs every failed dial; the error returned says it once.
	redisconn.Silence()
	cli.Main("dlq", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}

const usage = `usage: dlq [--redis-url URL] COMMAND [flags]

Environment: REDIS_URL (default redis://127.0.0.1:6379).

commands:
  list     show dead letters, oldest first (--json, --limit N, --after ENTRY)
  count    print how many dead letters there are
  export   write every dead letter as JSON lines (-o FILE, default stdout)
  requeue  enqueue dead IDs again and remove their entries (--all or ENTRY...)
  purge    remove entries without requeuing (--all --yes, or ENTRY...)`

// options are the command line.
type options struct {
	redisURL  string
	batchSize int
	cmd       string
	args      []string
	asJSON    bool
	limit     int64
	after     string
	out       string
	all, yes  bool
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage+"\n\nflags:"); fs.PrintDefaults() }
	// Shown without REDIS_URL's value: it may carry a password.
	fs.StringVar(&o.redisURL, "redis-url", "", "Redis `URL` (default $REDIS_URL, else redis://127.0.0.1:6379)")
	fs.IntVar(&o.batchSize, "batch-size", tasks.DefaultBatchSize, "batch size for requeued IDs; keep equal to the workers'")
	if err := fs.Parse(args); err != nil {
		return o, usageOrHelp(err)
	}
	o.redisURL = cmp.Or(o.redisURL, getenv("REDIS_URL"), "redis://127.0.0.1:6379")
	if fs.NArg() == 0 {
		fs.Usage()
		return o, cli.Usagef("no command given")
	}
	o.cmd = fs.Arg(0)
	switch o.cmd {
	case "list", "count", "export", "requeue", "purge":
	default:
		return o, cli.Usagef("unknown command %q\n%s", o.cmd, usage)
	}
	sub := flag.NewFlagSet("dlq "+o.cmd, flag.ContinueOnError)
	sub.SetOutput(stderr)
	sub.BoolVar(&o.asJSON, "json", false, "print JSON")
	sub.Int64Var(&o.limit, "limit", 100, "list at most this many")
	sub.StringVar(&o.after, "after", "", "list entries after this entry ID")
	sub.StringVar(&o.out, "o", "", "export to this `FILE` instead of stdout")
	sub.BoolVar(&o.all, "all", false, "act on every dead letter")
	sub.BoolVar(&o.yes, "yes", false, "confirm purging every dead letter")
	if err := sub.Parse(fs.Args()[1:]); err != nil {
		return o, usageOrHelp(err)
	}
	if o.limit < 1 {
		return o, cli.Usagef("--limit must be at least 1")
	}
	o.args = sub.Args()
	return o, nil
}

func usageOrHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return cli.Usage(err)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	rdb, err := cli.ConnectRedis(ctx, o.redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store := deadletter.NewStore(rdb)
	switch o.cmd {
	case "count":
		n, err := store.Count(ctx)
		if err == nil {
			fmt.Fprintln(stdout, n)
		}
		return err
	case "list":
		dls, err := store.List(ctx, o.after, o.limit)
		if err != nil {
			return err
		}
		return list(ctx, stdout, store, dls, o.asJSON)
	case "export":
		return export(ctx, store, o.out, stdout, stderr)
	}
	entries, err := pick(ctx, store, o.args, o.all)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintln(stdout, "no dead letters")
		return nil
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if o.cmd == "purge" {
		return purge(ctx, store, insp, entries, o, stdout)
	}
	return requeue(ctx, rdb, store, insp, entries, o, stdout)
}

// export writes every dead letter as JSON lines to file (stdout when empty).
func export(ctx context.Context, store *deadletter.Store, file string, stdout, stderr io.Writer) error {
	w := stdout
	if file != "" {
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	n, err := store.Export(ctx, w)
	if err == nil && file != "" {
		fmt.Fprintf(stderr, "exported %s to %s\n", modelid.Plural(n, "dead letter", "dead letters"), file)
	}
	return err
}

func purge(ctx context.Context, store *deadletter.Store, insp *asynq.Inspector, entries []deadletter.Entry, o options, stdout io.Writer) error {
	if o.all && !o.yes {
		return cli.Usagef("purge --all removes %s for good; add --yes to confirm", modelid.Plural(len(entries), "dead letter", "dead letters"))
	}
	res, err := deadletter.Purge(ctx, store, insp, entries)
	if o.asJSON {
		_ = json.NewEncoder(stdout).Encode(res)
	} else if res.Purged > 0 {
		fmt.Fprintf(stdout, "purged %s (%s removed)\n", modelid.Plural(res.Purged, "dead letter", "dead letters"), modelid.Plural(res.ArchivedDeleted, "archived task", "archived tasks"))
	}
	return err
}

func requeue(ctx context.Context, rdb redis.UniversalClient, store *deadletter.Store, insp *asynq.Inspector, entries []deadletter.Entry, o options, stdout io.Writer) error {
	p, err := enqueue.New(rdb, enqueue.Config{BatchSize: o.batchSize})
	if err != nil {
		return cli.Usage(err)
	}
	res, err := deadletter.Requeue(ctx, store, func(ctx context.Context, k modelid.Kind, ids []modelid.ID) (enqueue.Receipt, error) {
		return p.Enqueue(ctx, enqueue.Request{Kind: k, IDs: ids})
	}, insp, entries)
	if o.asJSON {
		_ = json.NewEncoder(stdout).Encode(res)
		return err
	}
	fmt.Fprintf(stdout, "requeued %s (%s removed)\n", modelid.Plural(res.Requeued, "dead letter", "dead letters"), modelid.Plural(res.ArchivedDeleted, "archived task", "archived tasks"))
	for _, s := range res.Skipped {
		fmt.Fprintf(stdout, "  left %s: %s\n", s.EntryID, s.Reason)
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
