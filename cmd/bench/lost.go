package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/producer"
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
	p, err := producer.New(e.rdb, producer.Config{BatchSize: batchSize})
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	if _, err := p.Enqueue(ctx, producer.Request{Kind: producer.KindModel, IDs: valid}); err != nil {
		return r, err
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	werr := waitFor(ctx, c.Timeout, 500*time.Millisecond, func() (bool, error) { return settled(ctx, e.rdb, insp, w, valid) })
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	r.Drain, r.Finished = time.Since(t0), werr == nil
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
}
