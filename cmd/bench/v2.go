package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// v2QPS is the fake's cap and the workers' --qps in the V2 scenarios.
const v2QPS = 50

type v2Result struct {
	IDs       int
	Drain     time.Duration
	Startup   time.Duration // worker start → first deletion
	Calls     int
	Throttled int // code 18 and HTTP 429 answers
	Deleted   int
}

func (r v2Result) idsPerSec() float64 { return float64(r.IDs) / r.Drain.Seconds() }

// throttledAnswers counts the fake's throttling answers, V1's and V2's.
func throttledAnswers(calls map[string]int) int {
	return calls["18"] + calls["429"] + calls["RequestLimitExceeded"]
}

// runV2Drain: a worker forced to V2 drains a backlog of string model IDs,
// one call per ID, at the fake's cap.
func runV2Drain(ctx context.Context, e *env, n int) (v2Result, error) {
	r := v2Result{IDs: n}
	if err := e.reset(ctx); err != nil {
		return r, err
	}
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: n, Versions: 1, Seed: 5}, time.Now())
	f, err := e.startFake(ctx, "v2-fake", fakeConfig{QPS: v2QPS, Latency: fakeLatency, Inventory: inv})
	if err != nil {
		return r, err
	}
	defer f.Kill()
	ids := make([]modelid.ID, n)
	for i, m := range inv.Models {
		ids[i] = modelid.StringID(m.IDStr)
	}
	p, err := enqueue.New(e.rdb, enqueue.Config{BatchSize: batchSize})
	if err != nil {
		return r, err
	}
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids}); err != nil {
		return r, err
	}
	w, err := e.startWorker("v2-worker", f, workerConfig{QPS: v2QPS, BatchSize: batchSize, Concurrency: concurrency,
		Extra: []string{"--qianfan-api", "v2"}})
	if err != nil {
		return r, err
	}
	defer func() { w.Stop(10 * time.Second) }()
	t0 := time.Now()
	if err := waitDeleted(ctx, f, n, 10*time.Minute, w); err != nil {
		return r, fmt.Errorf("waiting for %d deletions: %w", n, err)
	}
	first, last, err := eventSpan(ctx, e)
	if err != nil {
		return r, err
	}
	// From the first deletion, plus the one call interval before it: the
	// worker's start is not the API's time.
	r.Drain = last.Sub(first) + time.Second/v2QPS
	r.Startup = first.Sub(t0)
	st, err := f.Stats(ctx)
	if err != nil {
		return r, err
	}
	r.Calls, r.Throttled, r.Deleted = st.Deletes, throttledAnswers(st.Calls), st.IDsDeleted
	return r, nil
}

// eventSpan is the time of the first and the last event.
func eventSpan(ctx context.Context, e *env) (time.Time, time.Time, error) {
	last, err := lastEventTime(ctx, e.rdb)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	msgs, err := e.rdb.XRangeN(ctx, ledger.EventStream, "-", "+", 1).Result()
	if err != nil || len(msgs) == 0 {
		return time.Time{}, time.Time{}, err
	}
	var ms int64
	fmt.Sscanf(msgs[0].ID, "%d-", &ms)
	return time.UnixMilli(ms), last, nil
}

func (r v2Result) rows(t *table) {
	limit := float64(v2QPS)
	t.add("v2", "IDs (string model IDs), --qianfan-api v2: one call per ID", itoa(r.IDs), fmt.Sprintf("fake cap and --qps %d", v2QPS), "", "")
	t.add("v2", "drain: first deletion → last deletion (+1 call interval)", dur(r.Drain), "worker start → first deletion "+dur(r.Startup), "", "")
	t.add("v2", fmt.Sprintf("drain rate, fraction of the API limit (%d IDs/s)", v2QPS), fmt.Sprintf("%.1f IDs/s", r.idsPerSec()),
		ratio(r.idsPerSec()/limit), "≥ 0.9", verdict(r.idsPerSec()/limit >= 0.9))
	t.add("v2", "delete calls; rejected for QPS (code 18, HTTP 429)", fmt.Sprintf("%d; %d", r.Calls, r.Throttled), "", "0 rejected", verdict(r.Throttled == 0))
}

// switchConfig sizes the V1-shutdown scenario.
type switchConfig struct {
	IDs, Invalid int
	V1Calls      int // V1 calls served after the inventory warm-up
	Seed         uint64
}

type switchResult struct {
	Cfg              switchConfig
	Drain            time.Duration
	Finished         bool
	Lost             int
	DeletedTwice     int
	ValidDead        int
	InvalidDeadOnce  int
	InvalidDeadOther int
	Switches         int
	Calls            map[string]int
	Endpoints        map[string]int
	State            string // where the queue's tasks were when it did not finish
}

// switchAccount: purged models (int and string forms) and purged versions
// (int and string forms) of other models, so no version goes with its
// model; invalid IDs were never in the account.
func switchAccount(c switchConfig) (inv *qianfantest.Inventory, models, versions, invalid []modelid.ID) {
	valid := c.IDs - c.Invalid
	nm, nv := valid/2, valid-valid/2
	inv = qianfantest.NewInventory(qianfantest.Generate{Models: nm + (nv+1)/2, Versions: 2, Seed: int64(c.Seed >> 3)}, time.Now())
	for i, m := range inv.Models[:nm] {
		if i%2 == 0 {
			models = append(models, modelid.IntID(m.ID))
		} else {
			models = append(models, modelid.StringID(m.IDStr))
		}
	}
	for i := range nv {
		v := inv.Models[nm+i/2].Versions[i%2]
		if i%4 < 2 {
			versions = append(versions, modelid.IntID(v.ID))
		} else {
			versions = append(versions, modelid.StringID(v.IDStr))
		}
	}
	// The first half are models, the rest versions (see runSwitch).
	for i := range c.Invalid {
		prefix := "am-"
		if i >= c.Invalid/2 {
			prefix = "amv-"
		}
		if i%2 == 0 {
			invalid = append(invalid, modelid.IntID(int64(800_000_000+i)))
		} else {
			invalid = append(invalid, modelid.StringID(fmt.Sprintf("%sinvalid%02d", prefix, i)))
		}
	}
	return inv, models, versions, invalid
}

// runSwitch: the worker in auto mode learns the account (int↔string pairs,
// versions included), then V1 serves only a few more calls and goes away
// while a burst of models and versions drains under faults.
func runSwitch(ctx context.Context, e *env, c switchConfig) (switchResult, error) {
	r := switchResult{Cfg: c}
	if err := e.reset(ctx); err != nil {
		return r, err
	}
	inv, models, versions, invalid := switchAccount(c)
	f, err := e.startFake(ctx, "switch-fake", fakeConfig{QPS: v2QPS, Latency: fakeLatency, Inventory: inv})
	if err != nil {
		return r, err
	}
	defer f.Kill()
	w, err := e.startWorker("switch-worker", f, workerConfig{QPS: v2QPS, BatchSize: batchSize, Concurrency: concurrency,
		Extra: []string{"--inventory-every", "1h", "--inventory-versions"}})
	if err != nil {
		return r, err
	}
	defer func() { w.Stop(10 * time.Second) }()
	if err := waitFor(ctx, 5*time.Minute, 200*time.Millisecond, func() (bool, error) {
		n, err := e.rdb.Exists(ctx, "qfpurge:{inv}:meta").Result()
		return n > 0, err
	}); err != nil {
		return r, fmt.Errorf("waiting for the inventory warm-up: %w", err)
	}
	if err := f.post(ctx, fmt.Sprintf("/_fake/v1-off?after=%d", c.V1Calls)); err != nil {
		return r, err
	}
	if err := f.SetFaults(ctx, chaosFaults(c.Seed)); err != nil {
		return r, err
	}
	t0 := time.Now()
	p, err := enqueue.New(e.rdb, enqueue.Config{BatchSize: batchSize})
	if err != nil {
		return r, err
	}
	half := len(invalid) / 2
	for _, req := range []enqueue.Request{
		{Kind: modelid.KindModel, IDs: append(append([]modelid.ID{}, models...), invalid[:half]...)},
		{Kind: modelid.KindVersion, IDs: append(append([]modelid.ID{}, versions...), invalid[half:]...)},
	} {
		if _, err := p.Enqueue(ctx, req); err != nil {
			return r, err
		}
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	werr := waitFor(ctx, 10*time.Minute, 500*time.Millisecond, func() (bool, error) {
		if err := w.exited(); err != nil {
			return false, err
		}
		return queueEmpty(insp, asynqlayout.Queue), nil
	})
	r.Finished = werr == nil
	r.Drain = time.Since(t0)
	if !r.Finished {
		r.State = queueState(insp, asynqlayout.Queue)
	}
	return r, r.collect(ctx, e, f, models, versions, invalid[:half], invalid[half:])
}

func (r *switchResult) collect(ctx context.Context, e *env, f *fake, models, versions, badModels, badVersions []modelid.ID) error {
	for _, kv := range []struct {
		kind string
		ids  []modelid.ID
	}{{qianfantest.KindModel, models}, {qianfantest.KindVersion, versions}} {
		keys := make([]string, len(kv.ids))
		for i, id := range kv.ids {
			keys[i] = fakeKey(id)
		}
		counts, err := f.DeleteCounts(ctx, kv.kind, keys)
		if err != nil {
			return err
		}
		for _, n := range counts {
			r.Lost += b2i(n == 0)
			r.DeletedTwice += b2i(n > 1)
		}
	}
	dead := map[string]int{}
	entries, err := deadletter.NewStore(e.rdb).All(ctx, 1000)
	if err != nil {
		return err
	}
	for _, d := range entries {
		dead[string(d.Kind)+":"+d.ID.String()]++
	}
	for _, id := range models {
		r.ValidDead += b2i(dead["model:"+id.String()] > 0)
	}
	for _, id := range versions {
		r.ValidDead += b2i(dead["version:"+id.String()] > 0)
	}
	for k, ids := range map[string][]modelid.ID{"model": badModels, "version": badVersions} {
		for _, id := range ids {
			if dead[k+":"+id.String()] == 1 {
				r.InvalidDeadOnce++
			} else {
				r.InvalidDeadOther++
			}
		}
	}
	evs, err := e.rdb.XRange(ctx, ledger.EventStream, "-", "+").Result()
	if err != nil {
		return err
	}
	for _, ev := range evs {
		r.Switches += b2i(ev.Values["outcome"] == "switched")
	}
	st, err := f.Stats(ctx)
	if err != nil {
		return err
	}
	r.Calls, r.Endpoints = st.Calls, st.Endpoints
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (r switchResult) rows(t *table) {
	c := r.Cfg
	t.add("switch", fmt.Sprintf("IDs: models and versions, int and string forms (%d invalid); 10%% faults incl. dropped answers", c.Invalid),
		itoa(c.IDs), fmt.Sprintf("V1 off after %d more calls", c.V1Calls), "", "")
	fin := "yes"
	if !r.Finished {
		fin = "NO (timed out)"
	}
	t.add("switch", "drain: first enqueue → queue empty", dur(r.Drain), "finished: "+fin, "", "")
	if r.State != "" {
		t.add("switch", "where the queue's tasks were at the timeout", strings.ReplaceAll(r.State, "\n", "; "), "", "", "")
	}
	t.add("switch", "valid IDs lost / deleted twice at the fake", fmt.Sprintf("%d / %d", r.Lost, r.DeletedTwice), "", "0 / 0", verdict(r.Lost == 0 && r.DeletedTwice == 0))
	t.add("switch", "valid IDs dead-lettered", itoa(r.ValidDead), "", "0", verdict(r.ValidDead == 0))
	t.add("switch", "invalid IDs dead exactly once", fmt.Sprintf("%d of %d", r.InvalidDeadOnce, c.Invalid), "", "all", verdict(r.InvalidDeadOnce == c.Invalid))
	t.add("switch", "switches to V2 recorded (events)", itoa(r.Switches), "", "1", verdict(r.Switches == 1))
	t.add("switch", "calls by endpoint", fmtCalls(r.Endpoints), "", "", "")
	t.add("switch", "calls by outcome", fmtCalls(r.Calls), "", "", "")
}

// post sends an empty POST to one of the fake's control endpoints.
func (f *fake) post(ctx context.Context, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+path, nil)
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return nil
}
