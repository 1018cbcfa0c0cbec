package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// The set-ups of the table.
const (
	burstQPS     = 20
	bulkQPS      = 50
	fakeLatency  = 20 * time.Millisecond
	batchSize    = 100
	concurrency  = 10
	workerMaxBat = 10 * time.Second // cmd/worker's --batch-max-wait default
)

// burstIDs returns n IDs, even positions int and odd ones string.
func burstIDs(n int, prefix string) []modelid.ID {
	ids := make([]modelid.ID, n)
	for i := range ids {
		if i%2 == 0 {
			ids[i] = modelid.IntID(int64(i + 1))
		} else {
			ids[i] = modelid.StringID(fmt.Sprintf("am-%s-%06d", prefix, i+1))
		}
	}
	return ids
}

// enqueueSingles enqueues one single-ID job per ID from n concurrent
// producers, as other systems would, and returns when all are in.
func enqueueSingles(ctx context.Context, rdb redis.UniversalClient, ids []modelid.ID, n int) error {
	p, err := enqueue.New(rdb, enqueue.Config{BatchSize: batchSize})
	if err != nil {
		return err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) || ctx.Err() != nil {
					return
				}
				if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{ids[i]}}); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitWorkerUp waits until an Asynq server has registered its heartbeat.
func waitWorkerUp(ctx context.Context, e *env, p *proc) error {
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	return waitFor(ctx, 15*time.Second, 50*time.Millisecond, func() (bool, error) {
		if err := p.exited(); err != nil {
			return false, err
		}
		s, err := insp.Servers()
		return err == nil && len(s) > 0, nil
	})
}

// waitDeleted waits until the fake has deleted n IDs.
func waitDeleted(ctx context.Context, f *fake, n int, limit time.Duration, procs ...*proc) error {
	return waitFor(ctx, limit, 50*time.Millisecond, func() (bool, error) {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return false, err
			}
		}
		st, err := f.Stats(ctx)
		if err != nil {
			return false, err
		}
		return st.IDsDeleted >= n, nil
	})
}

type burstResult struct {
	Workers    int
	ReadPair   bool // reads signed by the read-only pair, the fake's cap per key
	Reads      int  // list and describe calls during the drain (in-use view)
	Deletes    int  // delete calls during the drain
	IDs        int
	Drain      time.Duration // first enqueue → last deletion
	FromCall   time.Duration // first deletion → last deletion
	EnqueueFor time.Duration
	Calls      int
	OKCalls    int
	Rejected   int
	Deleted    int
	Largest    int
	PeakRSS    int64
}

func (r burstResult) idsPerSec() float64 { return float64(r.IDs) / r.Drain.Seconds() }

// fromCallPerSec counts from the first deletion, plus one call interval
// for the first call's own slot.
func (r burstResult) fromCallPerSec() float64 {
	return float64(r.IDs) / (r.FromCall + time.Second/burstQPS).Seconds()
}

// benchAccount is an account of n models (one version each) and their IDs,
// alternating int and string forms, for the scenarios that delete every
// model they hold. The in-use check reads the account before each call, so
// the fake must hold one: an open-world fake answers no listing.
func benchAccount(n int, seed int64) (*qianfantest.Inventory, []modelid.ID) {
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: n, Versions: 1, Seed: seed}, time.Now())
	ids := make([]modelid.ID, n)
	for i, m := range inv.Models {
		if i%2 == 0 {
			ids[i] = modelid.IntID(m.ID)
		} else {
			ids[i] = modelid.StringID(m.IDStr)
		}
	}
	return inv, ids
}

// rig is a burst set-up: the fake (20 calls/s cap) holding inv, and n
// workers sharing --qps 20; with readPair, reads are signed by the
// read-only pair and the fake's cap counts each key apart.
type rig struct {
	n        int
	inv      *qianfantest.Inventory
	readPair bool
}

// startBurstRig resets Redis and starts the rig, waiting until a worker has
// listed the account (as one running --inventory-every has), so int IDs
// are placed for the in-use check before the first enqueue.
func startBurstRig(ctx context.Context, e *env, name string, c rig) (*fake, []*proc, func(), error) {
	if err := e.reset(ctx); err != nil {
		return nil, nil, nil, err
	}
	f, err := e.startFake(ctx, name+"-fake", fakeConfig{QPS: burstQPS, Latency: fakeLatency, Inventory: c.inv, ReadKey: c.readPair, QPSPerKey: c.readPair})
	if err != nil {
		return nil, nil, nil, err
	}
	var ws []*proc
	stop := func() {
		for _, w := range ws {
			w.Stop(10 * time.Second)
		}
		f.Kill()
	}
	for i := range c.n {
		w, err := e.startWorker(fmt.Sprintf("%s-worker%d", name, i+1), f, workerConfig{QPS: burstQPS, BatchSize: batchSize, Concurrency: concurrency,
			ReadKey: c.readPair, Extra: []string{"--inventory-every", "1h"}})
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		if err := waitWorkerUp(ctx, e, w); err != nil {
			stop()
			return nil, nil, nil, err
		}
	}
	err = waitFor(ctx, 5*time.Minute, 100*time.Millisecond, func() (bool, error) {
		for _, w := range ws {
			if err := w.exited(); err != nil {
				return false, err
			}
		}
		n, err := e.rdb.Exists(ctx, "qfpurge:{inv}:meta").Result()
		return n > 0, err
	})
	if err != nil {
		stop()
		return nil, nil, nil, fmt.Errorf("waiting for the account's listing: %w", err)
	}
	return f, ws, stop, nil
}

// runBurst enqueues the burst into n freshly started workers.
func runBurst(ctx context.Context, e *env, sc scale, n int, readPair bool) (burstResult, error) {
	r := burstResult{IDs: sc.BurstIDs, Workers: n, ReadPair: readPair}
	inv, ids := benchAccount(sc.BurstIDs, 20_000+int64(n))
	f, ws, stop, err := startBurstRig(ctx, e, fmt.Sprintf("burst%d", n), rig{n: n, inv: inv, readPair: readPair})
	if err != nil {
		return r, err
	}
	defer stop()
	before, err := f.Stats(ctx)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	if err := enqueueSingles(ctx, e.rdb, ids, sc.Producers); err != nil {
		return r, err
	}
	r.EnqueueFor = time.Since(t0)
	if err := waitDeleted(ctx, f, len(ids), 10*time.Minute, ws...); err != nil {
		return r, fmt.Errorf("waiting for %d deletions: %w", len(ids), err)
	}
	last, err := lastEventTime(ctx, e.rdb)
	if err != nil {
		return r, err
	}
	first, err := firstEventTime(ctx, e.rdb)
	if err != nil {
		return r, err
	}
	r.Drain, r.FromCall = last.Sub(t0), last.Sub(first)
	st, err := f.Stats(ctx)
	if err != nil {
		return r, err
	}
	r.Calls, r.Rejected, r.Deleted, r.Largest = sum(st.Calls)-sum(before.Calls), st.Calls["18"]-before.Calls["18"], st.IDsDeleted, st.LargestBatch
	r.Reads, r.Deletes = st.Reads-before.Reads, st.Deletes-before.Deletes
	r.OKCalls = r.Deletes
	for _, w := range ws {
		r.PeakRSS = max(r.PeakRSS, w.peakRSS())
	}
	return r, nil
}

func (r burstResult) rows(t *table) {
	limit := float64(burstQPS * batchSize)
	name := "burst"
	if r.Workers > 1 {
		name = fmt.Sprintf("burst, %d workers", r.Workers)
	}
	if r.ReadPair {
		name += ", read pair"
	}
	t.add(name, "IDs (single-ID jobs, 16 producers, int+string, account listed first)", itoa(r.IDs), "", "", "")
	t.add(name, "drain: first enqueue → last deletion", dur(r.Drain), "", "", "")
	t.add(name, "drain rate from the first enqueue, fraction of API limit (20×100 IDs/s)", fmt.Sprintf("%.0f IDs/s", r.idsPerSec()),
		ratio(r.idsPerSec()/limit), "≥ 0.9", verdict(r.idsPerSec()/limit >= 0.9))
	t.add(name, "drain rate from the first deletion (+1 call interval)", fmt.Sprintf("%.0f IDs/s", r.fromCallPerSec()),
		ratio(r.fromCallPerSec()/limit), "", "")
	t.add(name, "first enqueue → first deletion", dur(r.Drain-r.FromCall), "", "", "")
	t.add(name, "enqueue time (16 producers)", dur(r.EnqueueFor), fmt.Sprintf("%.0f jobs/s", float64(r.IDs)/r.EnqueueFor.Seconds()), "", "")
	t.add(name, "API calls during the drain (all outcomes)", itoa(r.Calls), "", "", "")
	t.add(name, "of them reads (the in-use view) and deletes", fmt.Sprintf("%d + %d", r.Reads, r.Deletes), "", "", "")
	if !r.ReadPair && r.Reads+r.Deletes > 0 {
		// One key: the view's reads come out of the same cap, so the
		// deletions can have at most this share of it.
		share := float64(r.Deletes) / float64(r.Reads+r.Deletes)
		t.add(name, "deletes' share of the calls: the ceiling of the drain rate when reads share the cap", fmt.Sprintf("%.3f", share), "", "", "")
	}
	mean := float64(r.Deleted) / float64(max(r.OKCalls, 1))
	t.add(name, "mean IDs per delete call", fmt.Sprintf("%.1f", mean), ratio(mean/batchSize), "≥ 95", verdict(mean >= 95))
	t.add(name, "calls rejected for QPS (code 18), worker --qps 20", itoa(r.Rejected), "", "0", verdict(r.Rejected == 0))
}

type baselineResult struct {
	Ours                float64
	Window              time.Duration
	NaiveDeleted        int
	NaiveRejected       int
	DefaultsDeleted     int // within the window
	DefaultsDrain       time.Duration
	DefaultsDrainedIDs  int
	DefaultsFirstDelete time.Duration
}

func runBaselines(ctx context.Context, e *env, sc scale, ours float64) (baselineResult, error) {
	r := baselineResult{Ours: ours, Window: sc.Window}
	ids := burstIDs(sc.BurstIDs, "base")
	err := withWorker(ctx, e, "naive", []string{roleEnv + "=" + roleNaive}, nil, func(f *fake, _ *proc) error {
		return runNaive(ctx, e, sc, ids, f, &r)
	})
	if err != nil {
		return r, fmt.Errorf("naive: %w", err)
	}
	extra := []string{"-batch-size", strconv.Itoa(batchSize)}
	err = withWorker(ctx, e, "defaults", []string{roleEnv + "=" + roleDefaults}, extra, func(f *fake, w *proc) error {
		return runDefaults(ctx, e, sc, ids, f, w, &r)
	})
	if err != nil {
		return r, fmt.Errorf("asynq defaults: %w", err)
	}
	return r, nil
}

// withWorker runs fn against a fresh fake at the burst's cap and one
// baseline worker (the bench binary in a role), stopping both after.
func withWorker(ctx context.Context, e *env, name string, environ, extra []string, fn func(*fake, *proc) error) error {
	if err := e.reset(ctx); err != nil {
		return err
	}
	f, err := e.startFake(ctx, name+"-fake", fakeConfig{QPS: burstQPS, Latency: fakeLatency})
	if err != nil {
		return err
	}
	defer f.Kill()
	args := append([]string{"-redis-url", e.redis.URL(), "-base-url", f.URL, "-qps", strconv.Itoa(burstQPS),
		"-concurrency", strconv.Itoa(concurrency)}, extra...)
	w, err := e.start(name+"-worker", environ, nil, e.self, args...)
	if err != nil {
		return err
	}
	defer w.Stop(10 * time.Second)
	if err := waitWorkerUp(ctx, e, w); err != nil {
		return err
	}
	return fn(f, w)
}

// runNaive enqueues one task per ID for the window and counts what the
// naive worker deleted in it.
func runNaive(ctx context.Context, e *env, sc scale, ids []modelid.ID, f *fake, r *baselineResult) error {
	c := asynq.NewClientFromRedisClient(e.rdb)
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range sc.Producers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) || ctx.Err() != nil || time.Since(t0) > sc.Window {
					return
				}
				b, _ := json.Marshal(naivePayload{ID: ids[i]})
				if _, err := c.EnqueueContext(ctx, asynq.NewTask(naiveType, b, asynq.Queue(naiveQueue))); err != nil {
					failed.Store(&err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return *p
	}
	if err := sleepUntil(ctx, t0.Add(sc.Window)); err != nil {
		return err
	}
	st, err := f.Stats(ctx)
	if err != nil {
		return err
	}
	r.NaiveDeleted, r.NaiveRejected = st.IDsDeleted, st.Calls["18"]
	return nil
}

// runDefaults enqueues the burst for the pipeline with Asynq's default
// group settings, counts the window, then lets it finish (bounded) to
// show when it would have.
func runDefaults(ctx context.Context, e *env, sc scale, ids []modelid.ID, f *fake, w *proc, r *baselineResult) error {
	t0 := time.Now()
	if err := enqueueSingles(ctx, e.rdb, ids, sc.Producers); err != nil {
		return err
	}
	if err := sleepUntil(ctx, t0.Add(sc.Window)); err != nil {
		return err
	}
	st, err := f.Stats(ctx)
	if err != nil {
		return err
	}
	r.DefaultsDeleted = st.IDsDeleted
	_ = waitDeleted(ctx, f, len(ids), 3*time.Minute, w)
	if st, err = f.Stats(ctx); err != nil {
		return err
	}
	r.DefaultsDrainedIDs = st.IDsDeleted
	if last, err := lastEventTime(ctx, e.rdb); err == nil && !last.IsZero() {
		r.DefaultsDrain = last.Sub(t0)
	}
	if first, err := e.rdb.XRangeN(ctx, ledger.EventStream, "-", "+", 1).Result(); err == nil && len(first) > 0 {
		r.DefaultsFirstDelete = streamTime(first[0].ID).Sub(t0)
	}
	return nil
}

func (r baselineResult) rows(t *table) {
	w := r.Window.Seconds()
	naive := float64(r.NaiveDeleted) / w
	t.add("baseline", "ours (burst drain rate)", fmt.Sprintf("%.0f IDs/s", r.Ours), "", "", "")
	t.add("baseline", fmt.Sprintf("naive worker, %s window: IDs deleted", r.Window), itoa(r.NaiveDeleted),
		fmt.Sprintf("%.1f IDs/s", naive), "", "")
	t.add("baseline", "ours ÷ naive", fmt.Sprintf("%.0f×", r.Ours/naive), "", "≥ 50×", verdict(r.Ours/naive >= 50))
	t.add("baseline", "naive: calls rejected for QPS (code 18)", itoa(r.NaiveRejected), "", "", "")
	def := float64(r.DefaultsDeleted) / w
	t.add("baseline", fmt.Sprintf("Asynq default group settings, %s window: IDs deleted", r.Window), itoa(r.DefaultsDeleted),
		fmt.Sprintf("%.1f IDs/s", def), "", "")
	if def > 0 {
		t.add("baseline", "ours ÷ Asynq defaults (window)", fmt.Sprintf("%.1f×", r.Ours/def), "", "", "")
	} else {
		t.add("baseline", "ours ÷ Asynq defaults (window)", "∞ (nothing deleted in the window)", "", "", "")
	}
	if r.DefaultsDrain > 0 {
		rate := float64(r.DefaultsDrainedIDs) / r.DefaultsDrain.Seconds()
		t.add("baseline", "Asynq defaults: first deletion after", dur(r.DefaultsFirstDelete), "", "", "")
		t.add("baseline", fmt.Sprintf("Asynq defaults: %d IDs drained in", r.DefaultsDrainedIDs), dur(r.DefaultsDrain),
			fmt.Sprintf("%.0f IDs/s; ours ÷ it %.1f×", rate, r.Ours/rate), "", "")
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(t)):
		return nil
	}
}

type bulkResult struct {
	IDs        int
	Via        string
	EnqueueFor time.Duration
	Tasks      int
	MemBefore  int64
	MemAfter   int64
	Drain      time.Duration
	Calls      int
	Rejected   int
	PeakRSS    int64
	// Cmds are the Redis commands the drain sent (INFO commandstats, from
	// the worker's start until the queue is empty), by command.
	Cmds map[string]int64
}

func runBulk(ctx context.Context, e *env, sc scale) (bulkResult, error) {
	r := bulkResult{IDs: sc.BulkIDs}
	if err := e.reset(ctx); err != nil {
		return r, err
	}
	// String IDs: a worker places them for the in-use check without a
	// listing of the account (int IDs cost one first: see burst).
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: sc.BulkIDs, Versions: 1, Seed: 40_000}, time.Now())
	var b bytes.Buffer
	for _, m := range inv.Models {
		b.WriteString(m.IDStr)
		b.WriteByte('\n')
	}
	file := filepath.Join(e.dir, "bulk-ids.txt")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		return r, err
	}
	var err error
	if r.MemBefore, err = usedMemory(ctx, e.rdb); err != nil {
		return r, err
	}
	r.Via = "cmd/enqueue -f FILE --json"
	if r.EnqueueFor, r.Tasks, err = enqueueFile(ctx, e, file); err != nil {
		return r, err
	}
	if r.MemAfter, err = usedMemory(ctx, e.rdb); err != nil {
		return r, err
	}

	f, err := e.startFake(ctx, "bulk-fake", fakeConfig{QPS: bulkQPS, Latency: fakeLatency, Inventory: inv})
	if err != nil {
		return r, err
	}
	defer f.Kill()
	cmdsBefore, err := commandStats(ctx, e.rdb)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	w, err := e.startWorker("bulk-worker", f, workerConfig{QPS: bulkQPS, BatchSize: batchSize, Concurrency: concurrency})
	if err != nil {
		return r, err
	}
	defer w.Stop(10 * time.Second)
	if err := waitDeleted(ctx, f, sc.BulkIDs, 10*time.Minute, w); err != nil {
		return r, fmt.Errorf("waiting for %d deletions: %w", sc.BulkIDs, err)
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	if err := waitFor(ctx, time.Minute, 20*time.Millisecond, func() (bool, error) { return queueEmpty(insp, asynqlayout.Queue), nil }); err != nil {
		return r, fmt.Errorf("waiting for the queue to empty: %w", err)
	}
	cmdsAfter, err := commandStats(ctx, e.rdb)
	if err != nil {
		return r, err
	}
	r.Cmds = map[string]int64{}
	for c, n := range cmdsAfter {
		if d := n - cmdsBefore[c]; d > 0 {
			r.Cmds[c] = d
		}
	}
	last, err := lastEventTime(ctx, e.rdb)
	if err != nil {
		return r, err
	}
	r.Drain = last.Sub(t0)
	st, err := f.Stats(ctx)
	if err != nil {
		return r, err
	}
	r.Calls, r.Rejected = sum(st.Calls), st.Calls["18"]
	r.PeakRSS = w.peakRSS()
	return r, nil
}

// enqueueFile runs cmd/enqueue on file, timing it from process start to
// exit, and counts the tasks its receipt lists.
func enqueueFile(ctx context.Context, e *env, file string) (time.Duration, int, error) {
	cmd := exec.CommandContext(ctx, e.enqueue, "-f", file, "--json", "--batch-size", strconv.Itoa(batchSize),
		"--redis-url", e.redis.URL(), "--progress", "never")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	if err != nil {
		return took, 0, fmt.Errorf("cmd/enqueue: %w: %s", err, errb.String())
	}
	var rc enqueue.Receipt
	if err := json.Unmarshal(out.Bytes(), &rc); err != nil {
		return took, 0, fmt.Errorf("cmd/enqueue --json output: %w", err)
	}
	return took, len(rc.Batches), nil
}

func (r bulkResult) rows(t *table) {
	rate := float64(r.IDs) / r.EnqueueFor.Seconds()
	t.add("bulk", "IDs in one file, enqueued via "+r.Via, itoa(r.IDs), "", "", "")
	t.add("bulk", "enqueue (process start to exit)", dur(r.EnqueueFor), "", "", "")
	t.add("bulk", "enqueue rate", fmt.Sprintf("%.0f IDs/s", rate), ratio(rate/200_000), "≥ 200,000 IDs/s", verdict(rate >= 200_000))
	t.add("bulk", "tasks created", itoa(r.Tasks), "", "", "")
	drain := float64(r.IDs) / r.Drain.Seconds()
	limit := float64(bulkQPS * batchSize)
	t.add("bulk", "drain: worker start → last deletion", dur(r.Drain), "", "", "")
	t.add("bulk", "drain rate, fraction of API limit (50×100 IDs/s)", fmt.Sprintf("%.0f IDs/s", drain),
		ratio(drain/limit), "≥ 0.85", verdict(drain/limit >= 0.85))
	t.add("bulk", "API calls; rejected for QPS (code 18)", fmt.Sprintf("%d; %d", r.Calls, r.Rejected), "", "", "")
	var total int64
	type cmdN struct {
		name string
		n    int64
	}
	var top []cmdN
	for c, n := range r.Cmds {
		total += n
		top = append(top, cmdN{c, n})
	}
	slices.SortFunc(top, func(a, b cmdN) int { return cmpInt64(b.n, a.n) })
	var parts []string
	for _, c := range top[:min(len(top), 8)] {
		parts = append(parts, fmt.Sprintf("%s %.2f", c.name, float64(c.n)/float64(r.IDs)))
	}
	t.add("bulk", "worker Redis commands per deleted ID (INFO commandstats, worker start → queue empty)",
		fmt.Sprintf("%.2f", float64(total)/float64(r.IDs)), strings.Join(parts, ", "), "report (was about 6)", "")
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r bulkResult) footprintRows(t *table) {
	if r.PeakRSS > 0 {
		mb := float64(r.PeakRSS) / (1 << 20)
		t.add("footprint", "worker peak RSS (VmHWM) during bulk", fmt.Sprintf("%.1f MiB", mb), ratio(mb/100), "≤ 100 MB", verdict(mb <= 100))
	} else {
		t.add("footprint", "worker peak RSS (VmHWM) during bulk", "n/a (no /proc)", "", "≤ 100 MB", "")
	}
	per := float64(r.MemAfter-r.MemBefore) / float64(r.IDs)
	t.add("footprint", "Redis used_memory per pending ID (bulk, 100-ID tasks)", fmt.Sprintf("%.1f B", per),
		fmt.Sprintf("%.1f MiB for %d IDs", float64(r.MemAfter-r.MemBefore)/(1<<20), r.IDs), "report", "")
}

type trickleResult struct {
	IDs           int
	P50, P99, Max time.Duration
	Missing       int
	BatchWait     time.Duration // the workers' --batch-wait
}

func runTrickle(ctx context.Context, e *env, sc scale) (trickleResult, error) {
	r := trickleResult{BatchWait: e.batchWait}
	n := int(sc.TrickleFor / sc.TrickleEvery)
	inv, ids := benchAccount(n, 30_000)
	f, ws, stop, err := startBurstRig(ctx, e, "trickle", rig{n: 1, inv: inv})
	if err != nil {
		return r, err
	}
	defer stop()
	p, err := enqueue.New(e.rdb, enqueue.Config{BatchSize: batchSize})
	if err != nil {
		return r, err
	}
	sent := map[string]time.Time{}
	tick := time.NewTicker(sc.TrickleEvery)
	defer tick.Stop()
	for i := range n {
		id := ids[i]
		sent[id.String()] = time.Now()
		if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{id}}); err != nil {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-tick.C:
		}
	}
	r.IDs = n
	_ = waitDeleted(ctx, f, n, 2*time.Minute, ws...)
	msgs, err := e.rdb.XRange(ctx, ledger.EventStream, "-", "+").Result()
	if err != nil {
		return r, err
	}
	var lat []time.Duration
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		if at, ok := sent[id]; ok && m.Values["outcome"] == string(ledger.StateDeleted) {
			lat = append(lat, streamTime(m.ID).Sub(at))
			delete(sent, id)
		}
	}
	r.Missing = len(sent)
	if len(lat) == 0 {
		return r, errors.New("no deletions recorded")
	}
	slices.Sort(lat)
	r.P50, r.P99, r.Max = pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1]
	return r, nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (r trickleResult) rows(t *table) {
	limit := workerMaxBat + r.BatchWait + time.Second
	t.add("trickle", "IDs (one every 100 ms), not deleted in time", fmt.Sprintf("%d, %d", r.IDs, r.Missing), "", "0 missing", verdict(r.Missing == 0))
	t.add("trickle", "enqueue → deletion p50", dur(r.P50), ratio(r.P50.Seconds()/limit.Seconds()), "", "")
	t.add("trickle", "enqueue → deletion p99", dur(r.P99), ratio(r.P99.Seconds()/limit.Seconds()),
		"≤ "+limit.String()+" (max-wait+wait+1s)", verdict(r.P99 <= limit))
	t.add("trickle", "enqueue → deletion max", dur(r.Max), ratio(r.Max.Seconds()/limit.Seconds()), "", "")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// table is the printed result.
type table struct{ rows [][6]string }

func (t *table) add(scenario, figure, value, ratio, target, verdict string) {
	t.rows = append(t.rows, [6]string{scenario, figure, value, ratio, target, verdict})
}

func (t *table) print(w interface{ Write([]byte) (int, error) }) {
	head := [6]string{"scenario", "figure", "value", "ratio / context", "target", "met"}
	all := append([][6]string{head}, t.rows...)
	var width [6]int
	for _, r := range all {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for n, r := range all {
		var b strings.Builder
		for i, c := range r {
			b.WriteString("| ")
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+1))
		}
		b.WriteString("|\n")
		w.Write([]byte(b.String()))
		if n == 0 {
			var s strings.Builder
			for i := range r {
				s.WriteString("|" + strings.Repeat("-", width[i]+2))
			}
			s.WriteString("|\n")
			w.Write([]byte(s.String()))
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
func dur(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}
func ratio(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func slicesSort(s []string) { slices.Sort(s) }
