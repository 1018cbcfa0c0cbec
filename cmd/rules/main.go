// Command rules previews and runs the retention rules of a qfpurge schedule
// file from the shell, and lists and shows past runs.
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
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/fleetlimit"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/schedule"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

func main() {
	// go-redis logs every failed dial; the error returned says it once.
	redisconn.Silence()
	cli.Main("rules", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}

const usage = `usage: rules [flags] COMMAND [flags]

Previews and runs the retention rules of a qfpurge schedule file (docs/rules.md).

commands:
  list                           the rule entries of the schedule file
  preview NAME [--json] [--summary]
                                 plan the rule now, record the plan and print it; deletes nothing
  run NAME [--override-limit] [--json] [--summary]
                                 plan the rule now, record the plan and enqueue exactly its deletions
                                 for the workers; a plan over the rule's limit deletes nothing unless
                                 --override-limit (this run only)
  runs [--limit N] [--json]      past previews and runs, newest first
  runs show ID [--json] [--limit N] [--offset N]
                                 one run: its record, its items with their reasons and outcomes

environment (flags override):
  QFPURGE_SCHEDULE               the schedule file (--schedule)
  REDIS_URL                      the workers' Redis (--redis-url)
  QIANFAN_ACCESS_KEY, QIANFAN_SECRET_KEY   for preview and run (the secret is never printed)
  QIANFAN_BASE_URL               Qianfan's API root (--qianfan-base-url)

flags:`

// globals are the flags before the command.
type globals struct {
	schedule, redisURL, baseURL string
	qps                         float64
	batchSize, concurrency      int
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	var g globals
	fs.StringVar(&g.schedule, "schedule", getenv("QFPURGE_SCHEDULE"), "schedule `file` holding the rules (env QFPURGE_SCHEDULE)")
	fs.StringVar(&g.redisURL, "redis-url", cmp.Or(getenv("REDIS_URL"), "redis://127.0.0.1:6379"), "Redis URL (env REDIS_URL)")
	fs.StringVar(&g.baseURL, "qianfan-base-url", cmp.Or(getenv("QIANFAN_BASE_URL"), qianfan.DefaultBaseURL), "Qianfan's API root (env QIANFAN_BASE_URL)")
	fs.Float64Var(&g.qps, "qps", 10, "most API calls per second, shared with the workers on the same Redis and access key; 0 for none")
	fs.IntVar(&g.batchSize, "batch-size", tasks.DefaultBatchSize, "IDs per batch; keep equal to the workers' --batch-size")
	fs.IntVar(&g.concurrency, "concurrency", 4, "detail calls a plan makes at once (the QPS budget still paces them)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.Usage(err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return cli.Usagef("no command given")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "list":
		return list(g, rest, stdout, stderr)
	case "preview", "run":
		return planCmd(ctx, g, cmd, rest, getenv, stdout, stderr)
	case "runs":
		return runsCmd(ctx, g, rest, stdout, stderr)
	}
	return cli.Usagef("unknown command %q (want list, preview, run or runs)", cmd)
}

// parseSub parses a command's flags, which may come before or after its
// arguments ("preview NAME --json" and "preview --json NAME").
func parseSub(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, cli.Usage(err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
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

func list(g globals, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rules list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if pos, err := parseSub(fs, args); err != nil || len(pos) > 0 {
		return cmp.Or(err, cli.Usagef("list takes no arguments"))
	}
	entries, err := loadRules(g)
	if err != nil {
		return err
	}
	printEntries(stdout, entries)
	return nil
}

func planCmd(ctx context.Context, g globals, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rules "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the record and the plan as JSON")
	summary := fs.Bool("summary", false, "print the totals only, not every item")
	override := false
	if cmd == "run" {
		fs.BoolVar(&override, "override-limit", false, "run even if the plan is over the rule's limit (this run only)")
	}
	pos, err := parseSub(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("%s takes one rule name", cmd)
	}
	rule, err := findRule(g, pos[0])
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
	rec, plan, err := runner.Execute(ctx, *rule, policy.Options{Mode: mode, Trigger: "cli", By: who(), OverrideLimit: override})
	if rec.ID == "" {
		return err
	}
	if *asJSON {
		if perr := printJSON(stdout, struct {
			Run  policy.Record `json:"run"`
			Plan *policy.Plan  `json:"plan,omitempty"`
		}{rec, summarize(plan, *summary)}); perr != nil {
			return perr
		}
	} else {
		printPlan(stdout, rec, plan, *summary)
	}
	switch {
	case err != nil:
		return fmt.Errorf("run %s: %w", rec.ID, err)
	case rec.Status == policy.StatusBlocked:
		return fmt.Errorf("run %s blocked: %s; nothing deleted (--override-limit runs it anyway, once)", rec.ID, rec.Blocked)
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
	ak, sk := getenv("QIANFAN_ACCESS_KEY"), getenv("QIANFAN_SECRET_KEY")
	if ak == "" || sk == "" {
		return nil, nil, cli.Usagef("QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY must be set")
	}
	if g.qps < 0 || g.batchSize < 1 || g.concurrency < 1 {
		return nil, nil, cli.Usagef("--qps must not be negative, --batch-size and --concurrency must be at least 1")
	}
	rdb, err := cli.ConnectRedis(ctx, g.redisURL)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*policy.Runner, func(), error) { rdb.Close(); return nil, nil, err }
	opts := []qianfan.Option{qianfan.WithBaseURL(g.baseURL)}
	if g.qps > 0 {
		l, err := fleetlimit.New(rdb, fleetlimit.Config{QPS: g.qps, Key: fleetlimit.Key(g.baseURL, ak)})
		if err != nil {
			return fail(err)
		}
		opts = append(opts, qianfan.WithLimiter(l))
	}
	qc, err := qianfan.New(qianfan.Credentials{AccessKey: ak, SecretKey: sk}, opts...)
	if err != nil {
		return fail(cli.Usage(err))
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

func runsCmd(ctx context.Context, g globals, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rules runs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 0, "most runs (default 50) or items (default all) to show")
	offset := fs.Int("offset", 0, "runs show: the first item to show")
	pos, err := parseSub(fs, args)
	if err != nil {
		return err
	}
	if *limit < 0 || *offset < 0 {
		return cli.Usagef("--limit and --offset must not be negative")
	}
	switch {
	case len(pos) == 0:
	case len(pos) == 2 && pos[0] == "show":
		if !policy.ValidRunID(pos[1]) {
			return cli.Usagef("bad run ID %q", pos[1])
		}
	default:
		return cli.Usagef("usage: runs [--limit N] [--json], or runs show ID")
	}
	rdb, err := cli.ConnectRedis(ctx, g.redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store := policy.NewStore(rdb, policy.StoreConfig{})
	if len(pos) == 0 {
		runs, err := store.List(ctx, cmp.Or(*limit, 50), time.Time{})
		if err != nil {
			return err
		}
		if *asJSON {
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
	items, total, err := store.Items(ctx, rec.ID, *offset, *limit)
	if err != nil {
		return err
	}
	outs, err := policy.Outcomes(ctx, ledger.New(rdb, ledger.Config{}), rec.Kind, items)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, struct {
			Run   policy.Record        `json:"run"`
			Items []policy.ItemOutcome `json:"items"`
			Total int                  `json:"total_items"`
		}{rec, append([]policy.ItemOutcome{}, outs...), total})
	}
	printRun(stdout, rec, outs, total, *offset)
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
