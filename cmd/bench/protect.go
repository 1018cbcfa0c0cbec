package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// protectConfig sizes the in-use protection scenario.
type protectConfig struct {
	IDs        int // purged models; the account holds as many again that are kept
	Services   int // custom services, half of each protocol version
	BatchTasks int // batch inference tasks in random states
	Seed       uint64
}

// protectRun is one drain of the scenario, protection on or off.
type protectRun struct {
	DeleteInUse bool
	Cold        bool          // no listing of the account before the drain
	MaxAge      time.Duration // the worker's --in-use-max-age; 0 keeps its default
	ReadPair    bool          // the worker reads with a read-only pair, --read-qps as --qps
	PerKey      bool          // the fake's cap counts each access key apart (else one window)
	Drain       time.Duration // first enqueue → last event
	FromFirst   time.Duration // first event → last event
	Deletes     int           // delete calls
	Reads       int           // read calls made from the enqueue on
	FullReads   int           // of them, signed by the full key
	PairDeletes int           // delete calls signed by the read pair (refused)
	Throttled   int           // calls answered "over the QPS cap" (18, RequestLimitExceeded)
	InUse       int           // purged IDs in use at the start (from the inventory)
	Protected   int           // purged IDs the ledger records protected
	InUseGone   int           // in-use IDs the fake deleted
	FreeGone    int           // IDs not in use that the fake deleted
	Unfinished  int           // IDs without an end state
	Finished    bool
	ServiceRuns int // the fake's own count of deletions of what a service or an unfinished task used
}

type protectResult struct {
	Cfg     protectConfig
	Account int
	Runs    []protectRun
}

// protectAccount makes the account and picks the purged models (the first
// half, even positions by int ID, odd by string ID), with the set of those
// a service of either protocol (any status) or an unfinished batch
// inference task uses, as the in-use view defines it.
func protectAccount(c protectConfig) (inv *qianfantest.Inventory, ids []modelid.ID, inUse map[string]bool) {
	inv = qianfantest.NewInventory(qianfantest.Generate{Models: 2 * c.IDs, Versions: 2, Services: c.Services,
		BatchTasks: c.BatchTasks, Seed: int64(c.Seed >> 5)}, time.Now())
	used := map[string]bool{} // am- and amv- IDs
	for _, s := range inv.Services {
		used[s.Model], used[s.Version] = true, true
	}
	for _, t := range inv.BatchTasks {
		if t.Status == "Queuing" || t.Status == "Running" || t.Status == "Stopping" {
			used[t.Version] = true
		}
	}
	inUse = map[string]bool{}
	for i, m := range inv.Models[:c.IDs] {
		id := modelid.StringID(m.IDStr)
		if i%2 == 0 {
			id = modelid.IntID(m.ID)
		}
		ids = append(ids, id)
		u := used[m.IDStr]
		for _, v := range m.Versions {
			u = u || used[v.IDStr]
		}
		if u {
			inUse[fakeKey(id)] = true
		}
	}
	return inv, ids, inUse
}

// runProtect drains the same backlog three times, in the same account:
// with the in-use check (the default) and with every request saying
// DeleteInUse, each by a worker that has listed the account; then with the
// check by a worker that has not, so int IDs wait for a listing; last with
// the check and a view five times older than the default may be.
func runProtect(ctx context.Context, e *env, c protectConfig) (protectResult, error) {
	r := protectResult{Cfg: c}
	for _, v := range []protectRun{{}, {DeleteInUse: true}, {ReadPair: true, PerKey: true}, {ReadPair: true}, {Cold: true}, {MaxAge: 10 * time.Second}} {
		run, err := runProtectOnce(ctx, e, c, v, &r)
		if err != nil {
			return r, err
		}
		r.Runs = append(r.Runs, run)
	}
	return r, nil
}

// runProtectOnce: a worker drains one request of c.IDs model IDs at the
// bulk scenario's cap. Unless cold, it has listed the account once first
// (so every int ID's string form is known, as in a fleet that runs
// --inventory-every), and the drain starts after that listing.
func runProtectOnce(ctx context.Context, e *env, c protectConfig, run protectRun, r *protectResult) (protectRun, error) {
	if err := e.reset(ctx); err != nil {
		return run, err
	}
	inv, ids, inUse := protectAccount(c)
	r.Account, run.InUse = len(inv.Models), len(inUse)
	name := run.name()
	f, err := e.startFake(ctx, name+"-fake", fakeConfig{QPS: bulkQPS, Latency: fakeLatency, Inventory: inv, ReadKey: run.ReadPair, QPSPerKey: run.PerKey})
	if err != nil {
		return run, err
	}
	defer f.Kill()
	wc := workerConfig{QPS: bulkQPS, BatchSize: batchSize, Concurrency: concurrency, Extra: []string{"--inventory-every", "1h"}}
	if run.Cold {
		wc.Extra = nil
	}
	if run.MaxAge > 0 {
		wc.Extra = append(wc.Extra, "--in-use-max-age", run.MaxAge.String())
	}
	if run.ReadPair {
		wc.ReadKey = true
		wc.Extra = append(wc.Extra, "--read-qps", strconv.Itoa(bulkQPS))
	}
	w, err := e.startWorker(name+"-worker", f, wc)
	if err != nil {
		return run, err
	}
	defer func() { w.Stop(10 * time.Second) }()
	if run.Cold {
		err = waitWorkerUp(ctx, e, w)
	} else {
		err = waitFor(ctx, 5*time.Minute, 200*time.Millisecond, func() (bool, error) {
			if err := w.exited(); err != nil {
				return false, err
			}
			n, err := e.rdb.Exists(ctx, "qfpurge:{inv}:meta").Result()
			return n > 0, err
		})
	}
	if err != nil {
		return run, fmt.Errorf("%s: waiting for the worker: %w", name, err)
	}
	before, err := f.Stats(ctx)
	if err != nil {
		return run, err
	}
	p, err := enqueue.New(e.rdb, enqueue.Config{BatchSize: batchSize})
	if err != nil {
		return run, err
	}
	t0 := time.Now()
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids, DeleteInUse: run.DeleteInUse, RequestedBy: "bench"}); err != nil {
		return run, err
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	// Four minutes per 20,000 IDs: a cold drain first lists the whole
	// account (twice the IDs) out of the same budget.
	wait := 4 * time.Minute * time.Duration(max(1, (len(ids)+19_999)/20_000))
	werr := waitFor(ctx, wait, 100*time.Millisecond, func() (bool, error) { return settled(ctx, e.rdb, insp, w, ids) })
	if ctx.Err() != nil {
		return run, ctx.Err()
	}
	run.Finished = werr == nil
	last, err := lastEventTime(ctx, e.rdb)
	if err != nil {
		return run, err
	}
	first, err := firstEventTime(ctx, e.rdb)
	if err != nil {
		return run, err
	}
	run.Drain, run.FromFirst = last.Sub(t0), last.Sub(first)
	st, err := f.Stats(ctx)
	if err != nil {
		return run, err
	}
	run.Deletes, run.Reads = st.Deletes-before.Deletes, st.Reads-before.Reads
	if run.ReadPair {
		run.FullReads = st.Keys[qianfantest.DefaultAccessKey].Reads - before.Keys[qianfantest.DefaultAccessKey].Reads
		run.PairDeletes = st.Keys[benchReadAK].Deletes - before.Keys[benchReadAK].Deletes
	}
	run.Throttled = st.Calls["18"] + st.Calls["RequestLimitExceeded"] - before.Calls["18"] - before.Calls["RequestLimitExceeded"]
	run.ServiceRuns = st.InUseDeletes
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = fakeKey(id)
	}
	counts, err := f.DeleteCounts(ctx, qianfantest.KindModel, keys)
	if err != nil {
		return run, err
	}
	recs, err := ledgerRecords(ctx, e.rdb, ids)
	if err != nil {
		return run, err
	}
	for i, k := range keys {
		switch {
		case counts[i] > 0 && inUse[k]:
			run.InUseGone++
		case counts[i] > 0:
			run.FreeGone++
		}
		switch recs[i].State {
		case "":
			run.Unfinished++
		case ledger.StateProtected:
			run.Protected++
		}
	}
	return run, nil
}

func (run protectRun) name() string {
	switch {
	case run.Cold:
		return "protect-on-cold"
	case run.DeleteInUse:
		return "protect-off"
	case run.MaxAge > 0:
		return "protect-on-age-" + run.MaxAge.String()
	case run.ReadPair && run.PerKey:
		return "protect-on-readpair-perkey"
	case run.ReadPair:
		return "protect-on-readpair-onewindow"
	}
	return "protect-on"
}

func (r protectResult) rows(t *table) {
	c := r.Cfg
	limit := float64(bulkQPS * batchSize)
	t.add("protect", "IDs (one request, int+string models); account: models, services (v1+v2), batch tasks",
		fmt.Sprintf("%d; %d, %d, %d", c.IDs, r.Account, c.Services, c.BatchTasks), "warm runs: after one listing of the account", "", "")
	for _, run := range r.Runs {
		name, wantProtected, wantInUseGone := run.name(), run.InUse, 0
		if run.DeleteInUse {
			wantProtected, wantInUseGone = 0, run.InUse
		}
		ok := run.Protected == wantProtected && run.InUseGone == wantInUseGone && run.ServiceRuns == wantInUseGone
		rate := float64(c.IDs) / run.Drain.Seconds()
		fin := ""
		if !run.Finished {
			fin = "; NOT finished (timed out)"
		}
		t.add(name, "drain: enqueue → last event", dur(run.Drain), fmt.Sprintf("%d IDs without an end state%s", run.Unfinished, fin), "", "")
		target, met := "", ""
		if !run.DeleteInUse && !run.Cold {
			target, met = "≥ 0.9", verdict(rate/limit >= 0.9)
		}
		t.add(name, "drain rate, fraction of API limit (50×100 IDs/s)", fmt.Sprintf("%.0f IDs/s", rate), ratio(rate/limit), target, met)
		// Plus one call interval for the first call's own slot, as burst.
		from := float64(c.IDs) / (run.FromFirst + time.Second/bulkQPS).Seconds()
		t.add(name, "drain rate from the first event (+1 call interval)", fmt.Sprintf("%.0f IDs/s", from), ratio(from/limit), "", "")
		t.add(name, "calls: delete; read (from the enqueue); reads per 100 IDs", fmt.Sprintf("%d; %d; %.2f", run.Deletes, run.Reads,
			100*float64(run.Reads)/float64(c.IDs)), fmt.Sprintf("answered over the QPS cap: %d", run.Throttled), "", "")
		if run.ReadPair {
			window := "one window for all keys"
			if run.PerKey {
				window = "a window per access key"
			}
			t.add(name, "read pair: reads signed by the full key; deletes signed by the read pair", fmt.Sprintf("%d; %d", run.FullReads, run.PairDeletes),
				"fake's cap: "+window, "0; 0", verdict(run.FullReads == 0 && run.PairDeletes == 0))
		}
		t.add(name, "in-use IDs enqueued: protected / deleted", fmt.Sprintf("%d: %d / %d", run.InUse, run.Protected, run.InUseGone),
			fmt.Sprintf("the fake's own count of in-use deletions: %d", run.ServiceRuns),
			fmt.Sprintf("%d / %d", wantProtected, wantInUseGone), verdict(ok))
		free := c.IDs - run.InUse
		t.add(name, "IDs not in use: deleted", fmt.Sprintf("%d of %d", run.FreeGone, free), "", "all", verdict(run.FreeGone == free))
	}
}
