// Package rulescmd is the rules command (qfpurge rules): it previews and
// runs the retention rules of a qfpurge schedule file from the shell, and
// lists and shows past runs.
//
//	rules list                                  the rule entries of the schedule file
//	rules preview NAME [--json] [--summary]     plan a rule now and print the plan; deletes nothing
//	rules run NAME [--override-limit] [--json]  plan a rule now and enqueue exactly its deletions
//	rules runs [--limit N] [--json]             past previews and runs, newest first
//	rules runs show ID [--json] [--limit N]     one run: its items and their outcomes
//
// A preview and a run compute the plan with the same function (policy.NewPlan)
// and record it in Redis; the workers then delete a run's IDs, each checked
// against the services right before its call. docs/rules.md has the format.
//
// Exit status: 0 done, 1 runtime failure (a plan that failed, or a run
// blocked by its limit: nothing deleted), 2 bad usage or a bad schedule file.
package rulescmd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/qfpurge/qfpurge/cmd/internal/qfclient"
	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/schedule"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// globals are the flags every subcommand takes.
type globals struct {
	schedule, redisURL, baseURL string
	qps                         float64
	batchSize, concurrency      int
}

// subFlags are the subcommands' own flags.
type subFlags struct {
	asJSON, summary, override bool
	limit, offset             int
}

// New returns the rules command reading the environment through getenv.
func New(getenv func(string) string) *cobra.Command {
	var (
		g  globals
		sf subFlags
	)
	cmd := cli.Group(&cobra.Command{
		Use:   "rules COMMAND",
		Short: "Preview and run retention rules, list and show past runs",
		Long: `Previews and runs the retention rules of a qfpurge schedule file (docs/rules.md).

environment (flags override):
  QFPURGE_SCHEDULE               the schedule file (--schedule)
  REDIS_URL                      the workers' Redis (--redis-url); required for preview, run and runs
  QIANFAN_READ_ACCESS_KEY, QIANFAN_READ_SECRET_KEY   a read-only pair: enough for preview and run
                                 (a run only enqueues; the workers delete)
  QIANFAN_ACCESS_KEY, QIANFAN_SECRET_KEY   used when no read-only pair is set (secrets never printed)
  QIANFAN_BASE_URL               Qianfan's API root (--qianfan-base-url)`,
	})
	pf := cmd.PersistentFlags()
	pf.StringVar(&g.schedule, "schedule", "", "schedule `FILE` holding the rules (default $QFPURGE_SCHEDULE)")
	pf.StringVar(&g.redisURL, "redis-url", "", "Redis `URL` (default $REDIS_URL)")
	pf.StringVar(&g.baseURL, "qianfan-base-url", "", "Qianfan's API root (default $QIANFAN_BASE_URL, else "+qianfan.DefaultBaseURL+")")
	pf.Float64Var(&g.qps, "qps", 10, "most API calls per second, shared with the workers on the same Redis and access key (the read-only pair's when set); 0 for none")
	pf.IntVar(&g.batchSize, "batch-size", tasks.DefaultBatchSize, "IDs per batch; keep equal to the workers' --batch-size")
	pf.IntVar(&g.concurrency, "concurrency", 4, "detail calls a plan makes at once (the QPS budget still paces them)")
	// resolved reads the environment for what the flags left unset (a flag
	// set to "" stays empty).
	resolved := func() globals {
		r := g
		fromEnv := func(flag, env string, dst *string) {
			if !pf.Changed(flag) {
				*dst = getenv(env)
			}
		}
		fromEnv("schedule", "QFPURGE_SCHEDULE", &r.schedule)
		fromEnv("redis-url", "REDIS_URL", &r.redisURL)
		fromEnv("qianfan-base-url", "QIANFAN_BASE_URL", &r.baseURL)
		r.baseURL = cmp.Or(r.baseURL, qianfan.DefaultBaseURL)
		return r
	}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "The rule entries of the schedule file", Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return list(resolved(), c.OutOrStdout()) },
	})
	oneRule := func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return cli.Usagef("%s takes one rule name", c.Name())
		}
		return nil
	}
	preview := &cobra.Command{
		Use: "preview NAME", Short: "Plan the rule now, record the plan and print it; deletes nothing", Args: oneRule,
		RunE: func(c *cobra.Command, args []string) error {
			return planCmd(c.Context(), resolved(), "preview", args[0], sf, getenv, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	run := &cobra.Command{
		Use:   "run NAME",
		Short: "Plan the rule now, record the plan and enqueue exactly its deletions",
		Long: `Plans the rule now, records the plan and enqueues exactly its deletions for the
workers; a plan over the rule's limit deletes nothing unless --override-limit
(this run only).`,
		Args: oneRule,
		RunE: func(c *cobra.Command, args []string) error {
			return planCmd(c.Context(), resolved(), "run", args[0], sf, getenv, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	for _, c := range []*cobra.Command{preview, run} {
		c.Flags().BoolVar(&sf.asJSON, "json", false, "print the record and the plan as JSON")
		c.Flags().BoolVar(&sf.summary, "summary", false, "print the totals only, not every item")
		cmd.AddCommand(c)
	}
	run.Flags().BoolVar(&sf.override, "override-limit", false, "run even if the plan is over the rule's limit (this run only)")
	runs := &cobra.Command{
		Use:   "runs [show ID]",
		Short: "Past previews and runs, newest first; runs show ID: one run, its items and their outcomes",
		Args: cli.Args(func(args []string) error {
			switch {
			case len(args) == 0:
			case len(args) == 2 && args[0] == "show":
				if !policy.ValidRunID(args[1]) {
					return fmt.Errorf("bad run ID %q", args[1])
				}
			default:
				return errors.New("usage: runs [--limit N] [--json], or runs show ID")
			}
			return nil
		}),
		RunE: func(c *cobra.Command, args []string) error {
			return runsCmd(c.Context(), resolved(), args, sf, c.OutOrStdout())
		},
	}
	runs.Flags().BoolVar(&sf.asJSON, "json", false, "print JSON")
	runs.Flags().IntVar(&sf.limit, "limit", 0, "most runs (default 50) or items (default all) to show")
	runs.Flags().IntVar(&sf.offset, "offset", 0, "runs show: the first item to show")
	cmd.AddCommand(runs)
	return cmd
}

func loadRules(g globals) ([]schedule.Entry, error) {
	if g.schedule == "" {
		return nil, cli.Usagef("no schedule file: give --schedule FILE or set QFPURGE_SCHEDULE")
	}
	entries, err := schedule.Load(g.schedule)
	if err != nil {
		var le *schedule.LineError
		if errors.As(err, &le) {
			return nil, cli.Usage(err)
		}
		return nil, err
	}
	var out []schedule.Entry
	for _, e := range entries {
		if e.Rule != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

func list(g globals, stdout io.Writer) error {
	entries, err := loadRules(g)
	if err != nil {
		return err
	}
	printEntries(stdout, entries)
	return nil
}

func planCmd(ctx context.Context, g globals, cmd, name string, sf subFlags, getenv func(string) string, stdout, stderr io.Writer) error {
	rule, err := findRule(g, name)
	if err != nil {
		return err
	}
	runner, closeRedis, err := newRunner(ctx, g, getenv, stderr)
	if err != nil {
		return err
	}
	defer closeRedis()
	mode := policy.ModePreview
	if cmd == "run" {
		mode = policy.ModeRun
	}
	rec, plan, err := runner.Execute(ctx, *rule, policy.Options{Mode: mode, Trigger: "cli", By: who(), OverrideLimit: sf.override})
	if rec.ID == "" {
		return err
	}
	if sf.asJSON {
		if perr := printJSON(stdout, struct {
			Run  policy.Record `json:"run"`
			Plan *policy.Plan  `json:"plan,omitempty"`
		}{rec, summarize(plan, sf.summary)}); perr != nil {
			return perr
		}
	} else {
		printPlan(stdout, rec, plan, sf.summary)
	}
	switch {
	case err != nil:
		return fmt.Errorf("run %s: %w", rec.ID, err)
	case rec.Status == policy.StatusBlocked:
		return fmt.Errorf("run %s blocked: %s; nothing deleted (rules run --override-limit runs it anyway, once)", rec.ID, rec.Blocked)
	}
	return nil
}

// findRule finds a rule entry of the schedule file by name.
func findRule(g globals, name string) (*policy.Rule, error) {
	entries, err := loadRules(g)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
		if e.Name == name {
			return e.Rule, nil
		}
	}
	return nil, cli.Usagef("no rule entry named %q in %s (rule entries: %s)", name, g.schedule, cmp.Or(strings.Join(names, ", "), "none"))
}

// newRunner opens Redis and a Qianfan client under the fleet's QPS budget.
func newRunner(ctx context.Context, g globals, getenv func(string) string, stderr io.Writer) (*policy.Runner, func(), error) {
	if g.qps < 0 || g.batchSize < 1 || g.concurrency < 1 {
		return nil, nil, cli.Usagef("--qps must not be negative, --batch-size and --concurrency must be at least 1")
	}
	if err := qfclient.Check(getenv, "rules preview and rules run"); err != nil {
		return nil, nil, err
	}
	rdb, err := cli.ConnectRedis(ctx, g.redisURL)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*policy.Runner, func(), error) { rdb.Close(); return nil, nil, err }
	// Plans only read (a run enqueues for the workers, which delete): the
	// read-only pair is enough, and with it this client cannot delete.
	qc, err := qfclient.Reader(rdb, getenv, g.baseURL, g.qps, "rules preview and rules run")
	if err != nil {
		return fail(err)
	}
	prod, err := enqueue.New(rdb, enqueue.Config{BatchSize: g.batchSize})
	if err != nil {
		return fail(cli.Usage(err))
	}
	runner := policy.NewRunner(rdb, policy.QianfanSource(qc), prod, policy.Config{Concurrency: g.concurrency,
		Logger: quietSlog(), Progress: newProgress(stderr, time.Now)})
	return runner, func() { rdb.Close() }, nil
}

// summarize drops the items of a plan when only totals are wanted.
func summarize(p *policy.Plan, summary bool) *policy.Plan {
	if p == nil || !summary {
		return p
	}
	cp := *p
	cp.Items = nil
	return &cp
}

func runsCmd(ctx context.Context, g globals, pos []string, sf subFlags, stdout io.Writer) error {
	if sf.limit < 0 || sf.offset < 0 {
		return cli.Usagef("--limit and --offset must not be negative")
	}
	rdb, err := cli.ConnectRedis(ctx, g.redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store := policy.NewStore(rdb, policy.StoreConfig{})
	if len(pos) == 0 {
		runs, err := store.List(ctx, cmp.Or(sf.limit, 50), time.Time{})
		if err != nil {
			return err
		}
		if sf.asJSON {
			return printJSON(stdout, struct {
				Runs []policy.Record `json:"runs"`
			}{append([]policy.Record{}, runs...)})
		}
		printRuns(stdout, runs)
		return nil
	}
	rec, err := store.Get(ctx, pos[1])
	if err != nil {
		return err
	}
	items, total, err := store.Items(ctx, rec.ID, sf.offset, sf.limit)
	if err != nil {
		return err
	}
	outs, err := policy.Outcomes(ctx, ledger.New(rdb, ledger.Config{}), rec.Kind, items)
	if err != nil {
		return err
	}
	if sf.asJSON {
		return printJSON(stdout, struct {
			Run   policy.Record        `json:"run"`
			Items []policy.ItemOutcome `json:"items"`
			Total int                  `json:"total_items"`
		}{rec, append([]policy.ItemOutcome{}, outs...), total})
	}
	printRun(stdout, rec, outs, total, sf.offset)
	return nil
}

// who names the person running the command, for the run's record.
func who() string {
	name := "?"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + cmp.Or(host, "?")
}

// newProgress shows a plan's version detail reads on stderr: a bar on a
// terminal, a line every 30 seconds otherwise (a plan can take minutes).
func newProgress(stderr io.Writer, now func() time.Time) func(done, total int) {
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		return func(done, total int) {
			if bar == nil {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("reading version details"), progressbar.OptionShowCount(),
					progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
			}
			if total != bar.GetMax() {
				bar.ChangeMax(total) // it grows as the listing is read
			}
			_ = bar.Set(done)
		}
	}
	var last time.Time
	return func(done, total int) {
		if total == 0 {
			return
		}
		if t := now(); done == 0 || done == total || t.Sub(last) >= 30*time.Second {
			last = t
			fmt.Fprintf(stderr, "reading version details: %d of %d models\n", done, total)
		}
	}
}
