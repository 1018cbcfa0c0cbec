// Package dlqcmd is the dlq command (qfpurge dlq): it reads and acts on
// qfpurge's dead letters, the IDs Qianfan refused for good (e.g. "500001
// param invalid") or that ran out of retries.
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
package dlqcmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// options are the command line.
type options struct {
	redisURL  string
	batchSize int
	asJSON    bool
	limit     int64
	after     string
	out       string
	all, yes  bool
}

// New returns the dlq command reading the environment through getenv.
func New(getenv func(string) string) *cobra.Command {
	var o options
	cmd := cli.Group(&cobra.Command{
		Use:   "dlq COMMAND",
		Short: "List, export, requeue and purge dead letters",
		Long: `Reads and acts on qfpurge's dead letters: the IDs Qianfan refused for good
(e.g. "500001 param invalid") or that ran out of retries. They live in the
Redis stream qfpurge:deadletters, which has no cap.

Environment: REDIS_URL, required unless --redis-url is given.`,
	})
	pf := cmd.PersistentFlags()
	// Shown without REDIS_URL's value: it may carry a password.
	pf.StringVar(&o.redisURL, "redis-url", "", "Redis `URL` (default $REDIS_URL)")
	pf.IntVar(&o.batchSize, "batch-size", tasks.DefaultBatchSize, "batch size for requeued IDs; keep equal to the workers'")

	// sub adds a subcommand whose action gets the opened store.
	sub := func(use, short string, args cobra.PositionalArgs, act func(ctx context.Context, c *cobra.Command, rdb redis.UniversalClient, args []string) error) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Args: args, RunE: func(c *cobra.Command, args []string) error {
			if o.limit < 1 {
				return cli.Usagef("--limit must be at least 1")
			}
			rdb, err := cli.ConnectRedis(c.Context(), cmp.Or(o.redisURL, getenv("REDIS_URL")))
			if err != nil {
				return err
			}
			defer rdb.Close()
			return act(c.Context(), c, rdb, args)
		}}
		cmd.AddCommand(c)
		return c
	}
	list := sub("list", "Show dead letters, oldest first", cli.NoArgs, func(ctx context.Context, c *cobra.Command, rdb redis.UniversalClient, _ []string) error {
		store := deadletter.NewStore(rdb)
		dls, err := store.List(ctx, o.after, o.limit)
		if err != nil {
			return err
		}
		return listEntries(ctx, c.OutOrStdout(), store, dls, o.asJSON)
	})
	list.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	list.Flags().Int64Var(&o.limit, "limit", 100, "list at most this many")
	list.Flags().StringVar(&o.after, "after", "", "list entries after this `ENTRY` ID")
	sub("count", "Print how many dead letters there are", cli.NoArgs, func(ctx context.Context, c *cobra.Command, rdb redis.UniversalClient, _ []string) error {
		n, err := deadletter.NewStore(rdb).Count(ctx)
		if err == nil {
			fmt.Fprintln(c.OutOrStdout(), n)
		}
		return err
	})
	export := sub("export", "Write every dead letter as JSON lines", cli.NoArgs, func(ctx context.Context, c *cobra.Command, rdb redis.UniversalClient, _ []string) error {
		return exportEntries(ctx, deadletter.NewStore(rdb), o.out, c.OutOrStdout(), c.ErrOrStderr())
	})
	export.Flags().StringVarP(&o.out, "output", "o", "", "export to this `FILE` instead of stdout")
	act := func(purging bool) func(ctx context.Context, c *cobra.Command, rdb redis.UniversalClient, args []string) error {
		return func(ctx context.Context, c *cobra.Command, rdb redis.UniversalClient, args []string) error {
			store := deadletter.NewStore(rdb)
			entries, err := pick(ctx, store, args, o.all)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				fmt.Fprintln(c.OutOrStdout(), "no dead letters")
				return nil
			}
			insp := asynq.NewInspectorFromRedisClient(rdb)
			if purging {
				return purge(ctx, store, insp, entries, o, c.OutOrStdout())
			}
			return requeue(ctx, rdb, store, insp, entries, o, c.OutOrStdout())
		}
	}
	requeueCmd := sub("requeue (--all | ENTRY...)", "Enqueue dead IDs again and remove their entries", cobra.ArbitraryArgs, act(false))
	requeueCmd.Flags().BoolVar(&o.all, "all", false, "requeue every dead letter")
	requeueCmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	purgeCmd := sub("purge (--all --yes | ENTRY...)", "Remove entries without requeuing", cobra.ArbitraryArgs, act(true))
	purgeCmd.Flags().BoolVar(&o.all, "all", false, "purge every dead letter")
	purgeCmd.Flags().BoolVar(&o.yes, "yes", false, "confirm purging every dead letter")
	purgeCmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	return cmd
}

// export writes every dead letter as JSON lines to file (stdout when empty).
func exportEntries(ctx context.Context, store *deadletter.Store, file string, stdout, stderr io.Writer) error {
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
	for _, rc := range res.Receipts {
		fmt.Fprintf(stdout, "  %s: request key %s (follow with \"qfpurge requests show %s\")\n", rc.Kind, rc.Key, rc.Key)
	}
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
		return nil, cli.Usage(errors.New("name entry IDs (from qfpurge dlq list) or --all"))
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

func listEntries(ctx context.Context, w io.Writer, store *deadletter.Store, dls []deadletter.Entry, asJSON bool) error {
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
	tw := cli.NewTable(w)
	fmt.Fprintln(tw, "ENTRY\tTIME\tKIND\tID\tREASON\tATTEMPTS\tTASK")
	for _, d := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.EntryID, d.At.Format(time.RFC3339), d.Kind, d.ID, d.Reason(), d.Attempts, d.TaskID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if int64(len(dls)) < total {
		fmt.Fprintf(w, "showing %d of %d; next page: qfpurge dlq list --after %s\n", len(dls), total, dls[len(dls)-1].EntryID)
	}
	return nil
}
