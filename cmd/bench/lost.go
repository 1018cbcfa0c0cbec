package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// lostConfig sizes the lost-answer scenario.
type lostConfig struct {
	Account int // models in the fake's account
	IDs     int // of them purged, alternately by int and by string ID
	Drops   int // delete calls whose answer the fake drops (after deleting)
	QPS     int // the fake's cap and the worker's --qps
	Seed    uint64
	Timeout time.Duration
	Log     io.Writer
}

// lostResult is what settling a bounded number of lost answers in a large
// account cost.
type lostResult struct {
	Cfg      lostConfig
	Drain    time.Duration
	Finished bool

	Dropped      int // answers the fake dropped
	LostIDs      int // IDs of those calls: recorded deleted after a read showed them absent
	Reads        int // reads during the drain, every kind
	ByName       int // V1 user/list calls with a nameFilter
	FullV1Pages  int // V1 user/list calls without one: pages of listings of the account
	V2Pages      int // V2 DescribeCustomModelSets pages
	Details      int // modelDetail and modelVersionDetail
	InUseReads   int // service and batch-task listings of the in-use check
	Endpoints    map[string]int
	Lost         int // valid IDs the fake never deleted
	Dead         int
	Presumed     int
	Unfinished   int
	DeletedTwice int
	Cmds         int64 // Redis commands from the enqueue's end until every outcome is written, the harness's polls left out
	BusyCmds     map[string]int64
	BusyIDs      int64 // outcomes written in the busy part
	// BusySent and BusyLua are the busy part's commands as MONITOR saw
	// them: sent by clients, and run inside scripts.
	BusySent, BusyLua map[string]int64
}

const (
	epUserList     = "/wenxinworkshop/modelrepo/model/user/list"
	epModelDetail  = "/wenxinworkshop/modelrepo/modelDetail"
	epVersionDet   = "/wenxinworkshop/modelrepo/modelVersionDetail"
	epV2ModelSets  = "/v2/model?Action=DescribeCustomModelSets"
	epV2Services   = "/v2/service?Action=DescribeServices"
	epV2BatchTasks = "/v2/batchinference?Action=DescribeBatchInferenceTasks"
)

// runLost purges c.IDs models of a c.Account-model account, the fake
// dropping the answer of c.Drops delete calls spread over the purge, and
// counts the reads that settle them. The worker lists the account once at
// start (--inventory-every), as an operator has it, so each batch has its
// evidence; the reads counted are those after that listing.
func runLost(ctx context.Context, e *env, c lostConfig) (lostResult, error) {
	r := lostResult{Cfg: c}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if err := e.reset(ctx); err != nil {
		return r, err
	}
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: c.Account, Versions: 1, Seed: int64(c.Seed >> 3)}, time.Now())
	var valid []modelid.ID
	step := c.Account / c.IDs
	for i := 0; i < c.IDs; i++ {
		m := inv.Models[i*step]
		if i%2 == 0 {
			valid = append(valid, modelid.IntID(m.ID))
		} else {
			valid = append(valid, modelid.StringID(m.IDStr))
		}
	}
	f, err := e.startFake(ctx, "lost-fake", fakeConfig{QPS: c.QPS, Inventory: inv})
	if err != nil {
		return r, err
	}
	defer f.Kill()
	wc := workerConfig{QPS: float64(c.QPS), BatchSize: batchSize, Concurrency: concurrency, Extra: []string{"--inventory-every", "1h"}}
	w, err := e.startWorker("lost-worker", f, wc)
	if err != nil {
		return r, err
	}
	defer func() { w.Stop(10 * time.Second) }()
	if err := waitWorkerUp(ctx, e, w); err != nil {
		return r, err
	}
	if err := waitFor(ctx, 10*time.Minute, 200*time.Millisecond, func() (bool, error) {
		if err := w.exited(); err != nil {
			return false, err
		}
		taken, err := inventory.NewStore(e.rdb).Taken(ctx)
		return err == nil && !taken.IsZero(), nil
	}); err != nil {
		return r, fmt.Errorf("the worker's first listing: %w", err)
	}
	// Spread the drops over the purge's delete calls.
	every := max(c.IDs/batchSize/(c.Drops+1), 1)
	if err := f.SetFaults(ctx, qianfantest.Faults{DropDeletes: c.Drops, DropEvery: every, Seed: int64(c.Seed)}); err != nil {
		return r, err
	}
	before, err := f.Stats(ctx)
	if err != nil {
		return r, err
	}
	p, err := enqueue.New(e.rdb, enqueue.Config{BatchSize: batchSize})
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: valid}); err != nil {
		return r, err
	}
	cmdsBefore, err := commandStats(ctx, e.rdb)
	if err != nil {
		return r, err
	}
	mon, err := startMonitor(e.rdb.Options().Addr)
	if err != nil {
		return r, err
	}
	defer mon.Close()
	// Wait cheaply (one XLEN a poll, one event per outcome) so that the
	// commands counted are the worker's; the ledger is checked once after.
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	// The busy part ends when every batch that lost no answer is written
	// (a dropped call holds at most one batch); its commands per ID are the
	// steady state, without the lost batches' wait.
	busyUntil := int64(len(valid) - c.Drops*batchSize)
	var busy map[string]int64
	werr := waitFor(ctx, c.Timeout, 200*time.Millisecond, func() (bool, error) {
		if err := w.exited(); err != nil {
			return false, err
		}
		n, err := e.rdb.XLen(ctx, ledger.EventStream).Result()
		if err == nil && busy == nil && n >= busyUntil {
			if busy, err = commandStats(ctx, e.rdb); err != nil {
				return false, err
			}
			r.BusySent, r.BusyLua = mon.counts()
			r.BusyIDs = n
		}
		return err == nil && n >= int64(len(valid)) && queueEmpty(insp, asynqlayout.Queue), err
	})
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	r.Drain = time.Since(t0)
	cmdsAfter, err := commandStats(ctx, e.rdb)
	if err != nil {
		return r, err
	}
	r.BusyCmds = map[string]int64{}
	for cmd, n := range cmdsAfter {
		if cmd != "xlen" && cmd != "info" { // the harness's
			r.Cmds += n - cmdsBefore[cmd]
			if d := busy[cmd] - cmdsBefore[cmd]; d > 0 {
				r.BusyCmds[cmd] = d
			}
		}
	}
	if werr == nil {
		ok, err := settled(ctx, e.rdb, insp, w, valid)
		if err != nil {
			return r, err
		}
		r.Finished = ok
	}
	after, err := f.Stats(ctx)
	if err != nil {
		return r, err
	}
	d := func(ep string) int { return after.Endpoints[ep] - before.Endpoints[ep] }
	r.Dropped = after.Calls["drop"] - before.Calls["drop"]
	r.Reads = after.Reads - before.Reads
	r.ByName = after.NameFiltered - before.NameFiltered
	r.FullV1Pages = d(epUserList) - r.ByName
	r.V2Pages = d(epV2ModelSets)
	r.Details = d(epModelDetail) + d(epVersionDet)
	r.InUseReads = d(epV2Services) + d(epV2BatchTasks)
	r.Endpoints = map[string]int{}
	for ep, n := range after.Endpoints {
		if n-before.Endpoints[ep] > 0 {
			r.Endpoints[ep] = n - before.Endpoints[ep]
		}
	}

	keys := make([]string, len(valid))
	for i, id := range valid {
		keys[i] = fakeKey(id)
	}
	counts, err := f.DeleteCounts(ctx, qianfantest.KindModel, keys)
	if err != nil {
		return r, err
	}
	for _, n := range counts {
		if n == 0 {
			r.Lost++
		}
		if n > 1 {
			r.DeletedTwice++
		}
	}
	recs, err := ledgerRecords(ctx, e.rdb, valid)
	if err != nil {
		return r, err
	}
	for _, rec := range recs {
		switch rec.State {
		case "":
			r.Unfinished++
		case ledger.StateDead:
			r.Dead++
		case ledger.StatePresumed:
			r.Presumed++
		}
		if !rec.Verified.IsZero() {
			r.LostIDs++
		}
	}
	if !r.Finished {
		fmt.Fprintf(c.Log, "lost: not finished: %v\n", werr)
	}
	return r, nil
}

func (r lostResult) rows(t *table) {
	c := r.Cfg
	t.add("lost", "models in the account; purged (alternately int and am- IDs)", fmt.Sprintf("%d; %d", c.Account, c.IDs),
		fmt.Sprintf("fake cap and --qps %d", c.QPS), "", "")
	fin := "yes"
	if !r.Finished {
		fin = "NO (timed out)"
	}
	t.add("lost", "drain: enqueue → all IDs in an end state", dur(r.Drain), "finished: "+fin, "", "")
	t.add("lost", "answers dropped by the fake (after deleting)", itoa(r.Dropped), "", "3–10", verdict(r.Dropped >= 3 && r.Dropped <= 10))
	t.add("lost", "lost IDs (in those calls; recorded deleted after a read showed them absent)", itoa(r.LostIDs), "", "report", "")
	settle := r.ByName + r.FullV1Pages + r.V2Pages + r.Details
	per := 0.0
	if r.LostIDs > 0 {
		per = float64(settle) / float64(r.LostIDs)
	}
	t.add("lost", "reads settling them (by name; account listing pages V1, V2; details)",
		fmt.Sprintf("%d (%d; %d, %d; %d)", settle, r.ByName, r.FullV1Pages, r.V2Pages, r.Details),
		fmt.Sprintf("%.2f per lost ID", per), "≈ 1 per lost ID", verdict(r.LostIDs > 0 && per <= 1.1))
	t.add("lost", "reads of the in-use check (services, batch tasks)", itoa(r.InUseReads), "", "", "")
	t.add("lost", "reads during the drain, every kind", itoa(r.Reads), "", "", "")
	t.add("lost", "valid IDs lost (never deleted at the fake)", itoa(r.Lost), "", "0", verdict(r.Lost == 0))
	t.add("lost", "IDs dead-lettered; presumed deleted", fmt.Sprintf("%d; %d", r.Dead, r.Presumed), "", "0; 0", verdict(r.Dead == 0 && r.Presumed == 0))
	t.add("lost", "IDs without an end state; deleted twice", fmt.Sprintf("%d; %d", r.Unfinished, r.DeletedTwice), "", "0; 0",
		verdict(r.Unfinished == 0 && r.DeletedTwice == 0))
	t.add("lost", "calls by endpoint during the drain", fmtCalls(r.Endpoints), "", "", "")
	perID := func(m map[string]int64) (float64, string) {
		var all int64
		type cmdN struct {
			name string
			n    int64
		}
		var top []cmdN
		for cmd, n := range m {
			if cmd == "xlen" || cmd == "info" || cmd == "monitor" { // the harness's
				continue
			}
			all += n
			top = append(top, cmdN{cmd, n})
		}
		slices.SortFunc(top, func(a, b cmdN) int { return cmpInt64(b.n, a.n) })
		var parts []string
		for _, x := range top[:min(len(top), 10)] {
			parts = append(parts, fmt.Sprintf("%s %.2f", x.name, float64(x.n)/float64(max(r.BusyIDs, 1))))
		}
		return float64(all) / float64(max(r.BusyIDs, 1)), strings.Join(parts, ", ")
	}
	sent, sentTop := perID(r.BusySent)
	t.add("lost", fmt.Sprintf("worker Redis commands sent per ID while deleting (MONITOR, the first %d outcomes)", r.BusyIDs),
		fmt.Sprintf("%.2f", sent), sentTop, "report (was about 6)", "")
	lua, luaTop := perID(r.BusyLua)
	t.add("lost", "… and run inside its scripts per ID", fmt.Sprintf("%.2f", lua), luaTop, "report", "")
	busy, busyTop := perID(r.BusyCmds)
	t.add("lost", "… both, as INFO commandstats counts them", fmt.Sprintf("%.2f", busy), busyTop, "report", "")
	t.add("lost", "worker Redis commands per ID, whole drain (the lost batches' waits and reads included)",
		fmt.Sprintf("%.2f", float64(r.Cmds)/float64(c.IDs)), fmt.Sprintf("%d commands", r.Cmds), "report", "")
}
