// Command bench is qfpurge's benchmark and fault harness. It starts a real
// redis-server on a free port, a fake Qianfan (fakeqianfan in a child
// process) and workers as separate processes, runs the scenarios and
// prints a table in which every timing figure is also a ratio to its limit
// or to a baseline measured in the same run. The plan scenario previews two
// retention rules with cmd/rules over a large account; the lost scenario
// counts the reads that settle a few lost answers in a 300,000-model account.
//
//	go run ./cmd/bench                       # every scenario, full scale
//	go run ./cmd/bench -quick                # smaller, about two minutes
//	go run ./cmd/bench -scenarios burst,chaos
//	go run ./cmd/bench -scenarios plan
//
// The same binary also plays the child roles the harness starts (the fake
// Qianfan, the naive worker, the worker with Asynq's default group
// settings); the environment variable QFPURGE_BENCH_ROLE selects one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/cli"
)

func main() {
	cli.Main("bench", func(ctx context.Context) error {
		if role := os.Getenv(roleEnv); role != "" {
			return runRole(ctx, role, os.Args[1:], os.Stdout, os.Stderr)
		}
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}

// allScenarios in the order they run.
var allScenarios = []string{"burst", "burst2", "baseline", "bulk", "footprint", "trickle", "chaos", "v2", "switch", "protect", "lost", "plan", "plan1m"}

// scale holds the sizes a run uses; -quick shrinks them.
type scale struct {
	BurstIDs     int
	Producers    int
	BulkIDs      int
	TrickleFor   time.Duration
	TrickleEvery time.Duration
	Window       time.Duration // baseline window
	ChaosIDs     int
	ChaosInvalid int
	ChaosKills   int
	V2IDs        int // the V2 drain and the V1-shutdown burst
	PlanModels   int // 4 versions each
	PlanServices int
	Plan1MModels int // the model rule alone, services 1 per 25 models
	Protect      protectConfig
	LostAccount  int // models in the lost-answer scenario's account
	LostIDs      int // of them purged
}

func fullScale() scale {
	return scale{BurstIDs: 20_000, Producers: 16, BulkIDs: 100_000, TrickleFor: 30 * time.Second,
		TrickleEvery: 100 * time.Millisecond, Window: 90 * time.Second, ChaosIDs: 20_000, ChaosInvalid: 10, ChaosKills: 3, V2IDs: 5_000,
		PlanModels: 50_000, PlanServices: 2_000, Plan1MModels: 1_000_000,
		Protect: protectConfig{IDs: 20_000, Services: 2_000, BatchTasks: 500}, LostAccount: 300_000, LostIDs: 5_000}
}

func quickScale() scale {
	return scale{BurstIDs: 4_000, Producers: 16, BulkIDs: 20_000, TrickleFor: 10 * time.Second,
		TrickleEvery: 100 * time.Millisecond, Window: 30 * time.Second, ChaosIDs: 2_000, ChaosInvalid: 10, ChaosKills: 2, V2IDs: 1_000,
		PlanModels: 5_000, PlanServices: 200, Plan1MModels: 100_000,
		Protect: protectConfig{IDs: 4_000, Services: 400, BatchTasks: 100}, LostAccount: 30_000, LostIDs: 2_000}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", "))
	quick := fs.Bool("quick", false, "smaller sizes (4,000 burst IDs, 20,000 bulk IDs, 10 s trickle, 30 s baseline window, 2,000 chaos IDs, 4,000 protect IDs, lost answers in 30,000 models, plan over 5,000 models)")
	seed := fs.Uint64("seed", 0, "seed for fault injection and kill moments; 0 picks one (printed)")
	window := fs.Duration("window", 0, "baseline window; defaults to 90s (30s with -quick)")
	keep := fs.Bool("keep", false, "keep the work directory (process logs) after the run")
	batchWait := fs.Duration("batch-wait", 2*time.Second, "the workers' --batch-wait (the worker's default is 2s; the trickle target follows it)")
	protectIDs := fs.Int("protect-ids", 0, "IDs the protect scenario drains (the account holds twice as many); defaults to 20,000 (4,000 with -quick)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.Usage(err)
	}
	sc := fullScale()
	if *quick {
		sc = quickScale()
	}
	if *window > 0 {
		sc.Window = *window
	}
	if *protectIDs < 0 {
		return cli.Usagef("-protect-ids %d: want a positive count", *protectIDs)
	}
	if *protectIDs > 0 {
		sc.Protect.IDs = *protectIDs
	}
	var picked []string
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return cli.Usagef("unknown scenario %q (want %s)", s, strings.Join(allScenarios, ", "))
		}
		picked = append(picked, s)
	}
	if *seed == 0 {
		*seed = rand.Uint64()
	}
	want := func(s string) bool { return slices.Contains(picked, s) }

	env, err := newEnv(ctx, stderr, *keep, want("bulk") || want("footprint"), want("plan") || want("plan1m"))
	if err != nil {
		return err
	}
	defer env.Close()
	env.batchWait = *batchWait
	fmt.Fprintf(stdout, "qfpurge bench: seed %d, work dir %s, workers' --batch-wait %s\n", *seed, env.dir, env.batchWait)
	fmt.Fprintf(stdout, "machine: %s\n", machine())

	t := &table{}
	for _, st := range steps(ctx, env, sc, *seed, want, stdout) {
		if !slices.ContainsFunc(st.names, want) {
			continue
		}
		r, err := st.run()
		if err != nil {
			return fmt.Errorf("%s: %w", st.names[0], err)
		}
		if r != nil {
			r.rows(t)
		}
		fmt.Fprintln(stdout, st.names[0], "done")
	}
	fmt.Fprintln(stdout)
	t.print(stdout)
	return nil
}

// step runs when any of its scenarios is wanted; what it returns adds its
// rows to the table (nil adds none).
type step struct {
	names []string
	run   func() (rower, error)
}

type rower interface{ rows(t *table) }

// rowsFunc adds rows by calling itself.
type rowsFunc func(t *table)

func (f rowsFunc) rows(t *table) { f(t) }

// steps lists the scenarios in the order they run; baseline reuses the
// burst's drain rate, footprint the bulk run.
func steps(ctx context.Context, env *env, sc scale, seed uint64, want func(string) bool, stdout io.Writer) []step {
	var burst burstResult
	return []step{
		{[]string{"burst", "baseline"}, func() (_ rower, err error) {
			if burst, err = runBurst(ctx, env, sc, 1, false); err != nil || !want("burst") {
				return nil, err
			}
			read, err := runBurst(ctx, env, sc, 1, true)
			return rowsFunc(func(t *table) { burst.rows(t); read.rows(t) }), err
		}},
		{[]string{"burst2"}, func() (rower, error) {
			one, err := runBurst(ctx, env, sc, 2, false)
			if err != nil {
				return nil, err
			}
			read, err := runBurst(ctx, env, sc, 2, true)
			return rowsFunc(func(t *table) { one.rows(t); read.rows(t) }), err
		}},
		{[]string{"baseline"}, func() (rower, error) { return runBaselines(ctx, env, sc, burst.idsPerSec()) }},
		{[]string{"bulk", "footprint"}, func() (rower, error) {
			r, err := runBulk(ctx, env, sc)
			return rowsFunc(func(t *table) {
				if want("bulk") {
					r.rows(t)
				}
				if want("footprint") {
					r.footprintRows(t)
				}
			}), err
		}},
		{[]string{"trickle"}, func() (rower, error) { return runTrickle(ctx, env, sc) }},
		{[]string{"chaos"}, func() (rower, error) {
			return runChaos(ctx, env, chaosConfig{
				IDs: sc.ChaosIDs, Invalid: sc.ChaosInvalid, Kills: sc.ChaosKills, Seed: seed,
				QPS: 50, Producers: sc.Producers, KillWithin: 6 * time.Second, Timeout: 8 * time.Minute, Log: stdout,
			})
		}},
		{[]string{"v2"}, func() (rower, error) { return runV2Drain(ctx, env, sc.V2IDs) }},
		{[]string{"switch"}, func() (rower, error) {
			return runSwitch(ctx, env, switchConfig{IDs: sc.V2IDs, Invalid: 5, V1Calls: 20, Seed: seed})
		}},
		{[]string{"protect"}, func() (rower, error) {
			c := sc.Protect
			c.Seed = seed
			return runProtect(ctx, env, c)
		}},
		{[]string{"lost"}, func() (rower, error) {
			return runLost(ctx, env, lostConfig{Account: sc.LostAccount, IDs: sc.LostIDs, Drops: 5, QPS: 500, Seed: seed,
				Timeout: 10 * time.Minute, Log: stdout})
		}},
		{[]string{"plan"}, func() (rower, error) { return runPlan(ctx, env, sc) }},
		{[]string{"plan1m"}, func() (rower, error) { return runPlan1M(ctx, env, sc) }},
	}
}
