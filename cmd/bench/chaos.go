package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// chaosConfig sizes the chaos scenario.
type chaosConfig struct {
	IDs     int // in all, invalid ones included
	Invalid int
	Kills   int
	// KillWithin: each SIGKILL comes at a random moment between 0.5 s and
	// this long after the previous start of the worker, at the first
	// moment after it when a batch is running.
	KillWithin time.Duration
	Seed       uint64
	QPS        int // the fake's cap and the worker's --qps
	Producers  int
	Timeout    time.Duration // bound on the whole drain
	Log        io.Writer
}

// chaosFaults are the transient faults: 10% of calls in all.
func chaosFaults(seed uint64) qianfantest.Faults {
	return qianfantest.Faults{
		Rate503: 0.03, Rate336100: 0.02, Rate500000: 0.01, RateReset: 0.02, RateDropAfterDelete: 0.02,
		Latency: fakeLatency, Seed: int64(seed >> 1),
	}
}

type chaosResult struct {
	Cfg      chaosConfig
	Valid    int
	Account  int // models the fake's account held at the start
	Drain    time.Duration
	Finished bool // every ID reached an end state and the queue is empty
	Kills    []time.Duration
	Restarts int

	Lost             int // valid IDs the fake never deleted
	Unfinished       int // IDs without an end state in the ledger
	DeletedTwice     int // valid IDs the fake deleted more than once
	ValidDead        int // valid IDs dead-lettered (wrongly)
	ValidPresumed    int // valid IDs recorded as presumed (deleted by a lost-answer call)
	InvalidDeadOnce  int // invalid IDs with exactly one dead letter
	InvalidDeadMulti int // invalid IDs dead-lettered more than once
	InvalidPresumed  int // invalid IDs wrongly presumed deleted (reset race)
	InvalidNotDead   int // invalid IDs with no dead letter
	OtherDead        int // dead letters naming no ID of the run

	Verified int // valid IDs recorded deleted after a listing showed them absent

	Calls         map[string]int
	Endpoints     map[string]int
	TotalCalls    int // reads and deletes
	Reads         int
	RepeatDeletes int
}

// failures lists what breaks the scenario's guarantees: an ID lost or
// unfinished, a valid ID dead-lettered, an invalid ID dead more than once.
func (r chaosResult) failures() []string {
	var f []string
	if r.Lost > 0 {
		f = append(f, fmt.Sprintf("%d valid IDs lost (never deleted at the fake)", r.Lost))
	}
	if r.Unfinished > 0 {
		f = append(f, fmt.Sprintf("%d IDs without an end state in the ledger", r.Unfinished))
	}
	if r.ValidDead > 0 {
		f = append(f, fmt.Sprintf("%d valid IDs dead-lettered", r.ValidDead))
	}
	if r.InvalidDeadMulti > 0 {
		f = append(f, fmt.Sprintf("%d invalid IDs dead-lettered more than once", r.InvalidDeadMulti))
	}
	if r.InvalidNotDead > 0 {
		f = append(f, fmt.Sprintf("%d invalid IDs not dead-lettered", r.InvalidNotDead))
	}
	if r.ValidPresumed+r.InvalidPresumed > 0 {
		f = append(f, fmt.Sprintf("%d IDs presumed deleted", r.ValidPresumed+r.InvalidPresumed))
	}
	if r.DeletedTwice > 0 {
		f = append(f, fmt.Sprintf("%d IDs deleted twice at the fake", r.DeletedTwice))
	}
	return f
}

// chaosAccount is the fake's account: the valid IDs' models and as many
// again that are not purged. Valid IDs alternate int and string forms;
// invalid ones were never in the account.
func chaosAccount(c chaosConfig) (inv *qianfantest.Inventory, valid, invalid []modelid.ID) {
	n := c.IDs - c.Invalid
	inv = qianfantest.NewInventory(qianfantest.Generate{Models: 2 * n, Versions: 1, Seed: int64(c.Seed >> 2)}, time.Now())
	for i, m := range inv.Models[:n] {
		if i%2 == 0 {
			valid = append(valid, modelid.IntID(m.ID))
		} else {
			valid = append(valid, modelid.StringID(m.IDStr))
		}
	}
	for i := range c.Invalid {
		if i%2 == 0 {
			invalid = append(invalid, modelid.IntID(int64(900_000_000+i)))
		} else {
			invalid = append(invalid, modelid.StringID(fmt.Sprintf("am-invalid-%02d", i)))
		}
	}
	return inv, valid, invalid
}

func runChaos(ctx context.Context, e *env, c chaosConfig) (chaosResult, error) {
	r := chaosResult{Cfg: c}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if err := e.reset(ctx); err != nil {
		return r, err
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0xc4a05))
	inv, valid, invalid := chaosAccount(c)
	r.Valid, r.Account = len(valid), len(inv.Models)
	all := append(append([]modelid.ID(nil), valid...), invalid...)
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	f, err := e.startFake(ctx, "chaos-fake", fakeConfig{QPS: c.QPS, Latency: fakeLatency, Inventory: inv})
	if err != nil {
		return r, err
	}
	defer f.Kill()
	if err := f.SetFaults(ctx, chaosFaults(c.Seed)); err != nil {
		return r, err
	}
	// A listing at start gives every batch its evidence: absence after a
	// lost answer proves deletion only for IDs a listing showed before.
	wc := workerConfig{QPS: float64(c.QPS), BatchSize: batchSize, Concurrency: concurrency, Extra: []string{"--inventory-every", "10m"}}
	w, err := e.startWorker("chaos-worker", f, wc)
	if err != nil {
		return r, err
	}
	defer func() { w.Stop(10 * time.Second) }()
	if err := waitWorkerUp(ctx, e, w); err != nil {
		return r, err
	}
	// The purge starts once the worker has listed the account, as an
	// operator running --inventory-every has it.
	if err := waitFor(ctx, 2*time.Minute, 100*time.Millisecond, func() (bool, error) {
		taken, err := inventory.NewStore(e.rdb).Taken(ctx)
		return err == nil && !taken.IsZero(), nil
	}); err != nil {
		return r, fmt.Errorf("the worker's first listing: %w", err)
	}

	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	t0 := time.Now()
	enq := make(chan error, 1)
	go func() { enq <- enqueueSingles(ctx, e.rdb, all, c.Producers) }()
	if w, err = r.kill(ctx, e, f, w, wc, insp, t0, rng); err != nil {
		return r, err
	}
	if err := <-enq; err != nil {
		return r, err
	}

	done := func() (bool, error) { return settled(ctx, e.rdb, insp, w, all) }
	werr := waitFor(ctx, c.Timeout-time.Since(t0), 500*time.Millisecond, done)
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	r.Finished = werr == nil
	r.Drain = time.Since(t0)
	if !r.Finished {
		fmt.Fprintf(c.Log, "chaos: not finished: %v\n%s\n", werr, queueState(insp, asynqlayout.Queue))
	}
	return r, r.collect(ctx, e.rdb, f, valid, invalid)
}

// kill SIGKILLs the worker c.Kills times at random moments, each at the
// next instant a batch runs, restarting it at once; it returns the worker
// that runs now.
func (r *chaosResult) kill(ctx context.Context, e *env, f *fake, w *proc, wc workerConfig, insp *asynq.Inspector,
	t0 time.Time, rng *rand.Rand) (*proc, error) {
	c := r.Cfg
	for k := range c.Kills {
		wait := 500*time.Millisecond + time.Duration(rng.Int64N(int64(max(c.KillWithin-500*time.Millisecond, time.Millisecond))))
		if err := sleepUntil(ctx, time.Now().Add(wait)); err != nil {
			return w, err
		}
		// At a moment a batch runs (bounded), so the kill hits the
		// pipeline at work, not an idle worker.
		_ = waitFor(ctx, 10*time.Second, 5*time.Millisecond, func() (bool, error) {
			q, err := insp.GetQueueInfo(asynqlayout.Queue)
			return err == nil && q.Active > 0, nil
		})
		if err := w.exited(); err != nil {
			return w, err
		}
		w.Kill()
		r.Kills = append(r.Kills, time.Since(t0))
		fmt.Fprintf(c.Log, "chaos: SIGKILL %d of %d at %.1f s\n", k+1, c.Kills, time.Since(t0).Seconds())
		var err error
		if w, err = e.startWorker("chaos-worker", f, wc); err != nil {
			return w, err
		}
		r.Restarts++
	}
	return w, nil
}

// settled reports whether the queue is empty and every ID has an end state.
func settled(ctx context.Context, rdb *redis.Client, insp *asynq.Inspector, w *proc, all []modelid.ID) (bool, error) {
	if err := w.exited(); err != nil {
		return false, err
	}
	if !queueEmpty(insp, asynqlayout.Queue) {
		return false, nil
	}
	states, err := ledgerStates(ctx, rdb, all)
	if err != nil {
		return false, err
	}
	for _, s := range states {
		if s == "" {
			return false, nil
		}
	}
	return true, nil
}

// collect fills the counts from the fake's per-ID delete counts, the ledger
// and the dead-letter stream.
func (r *chaosResult) collect(ctx context.Context, rdb *redis.Client, f *fake, valid, invalid []modelid.ID) error {
	vk := make([]string, len(valid))
	for i, id := range valid {
		vk[i] = fakeKey(id)
	}
	counts, err := f.DeleteCounts(ctx, qianfantest.KindModel, vk)
	if err != nil {
		return err
	}
	for _, n := range counts {
		if n == 0 {
			r.Lost++
		}
		if n > 1 {
			r.DeletedTwice++
		}
	}
	all := append(append([]modelid.ID(nil), valid...), invalid...)
	recs, err := ledgerRecords(ctx, rdb, all)
	if err != nil {
		return err
	}
	for i, rec := range recs {
		s := rec.State
		if i < len(valid) && !rec.Verified.IsZero() {
			r.Verified++
		}
		switch {
		case s == "":
			r.Unfinished++
		case i < len(valid) && s == ledger.StatePresumed:
			r.ValidPresumed++
		case i >= len(valid) && s == ledger.StatePresumed:
			r.InvalidPresumed++
		}
	}
	dead := map[string]int{}
	msgs, err := rdb.XRange(ctx, deadletter.Stream, "-", "+").Result()
	if err != nil {
		return err
	}
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		typ, _ := m.Values["id_type"].(string)
		dead[typ+":"+id]++
	}
	key := func(id modelid.ID) string { return string(id.Type()) + ":" + id.String() }
	seen := 0
	for _, id := range valid {
		if n := dead[key(id)]; n > 0 {
			r.ValidDead++
			seen += n
		}
	}
	for _, id := range invalid {
		n := dead[key(id)]
		seen += n
		switch {
		case n == 1:
			r.InvalidDeadOnce++
		case n > 1:
			r.InvalidDeadMulti++
		default:
			r.InvalidNotDead++
		}
	}
	r.OtherDead = len(msgs) - seen
	st, err := f.Stats(ctx)
	if err != nil {
		return err
	}
	r.Calls, r.Endpoints, r.RepeatDeletes = st.Calls, st.Endpoints, st.RepeatDeletes
	r.TotalCalls, r.Reads = st.Reads+st.Deletes, st.Reads
	return nil
}

// ledgerRecords reads the ledger record of each model ID, pipelined.
func ledgerRecords(ctx context.Context, rdb *redis.Client, ids []modelid.ID) ([]ledger.Record, error) {
	l := ledger.New(rdb, ledger.Config{})
	out := make([]ledger.Record, 0, len(ids))
	const chunk = 5000
	for lo := 0; lo < len(ids); lo += chunk {
		recs, err := l.LookupMany(ctx, modelid.KindModel, ids[lo:min(lo+chunk, len(ids))])
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// ledgerStates reads the ledger state of each model ID ("" when none).
func ledgerStates(ctx context.Context, rdb *redis.Client, ids []modelid.ID) ([]ledger.State, error) {
	recs, err := ledgerRecords(ctx, rdb, ids)
	if err != nil {
		return nil, err
	}
	out := make([]ledger.State, len(recs))
	for i, r := range recs {
		out[i] = r.State
	}
	return out, nil
}

func (r chaosResult) rows(t *table) {
	c := r.Cfg
	t.add("chaos", fmt.Sprintf("IDs (%d invalid), single-ID jobs; faults 10%% (3%% 503, 2%% 336100, 1%% 500000, 2%% reset, 2%% drop after delete)", c.Invalid),
		itoa(c.IDs), fmt.Sprintf("fake cap and --qps %d", c.QPS), "", "")
	t.add("chaos", "models in the fake's account (purged and kept)", itoa(r.Account), "inventory mode", "", "")
	ks := make([]string, len(r.Kills))
	for i, k := range r.Kills {
		ks[i] = fmt.Sprintf("%.1f s", k.Seconds())
	}
	t.add("chaos", "SIGKILLs of the worker (each restarted at once)", itoa(len(r.Kills)), "at "+strings.Join(ks, ", "), "", "")
	fin := "yes"
	if !r.Finished {
		fin = "NO (timed out)"
	}
	t.add("chaos", "drain: first enqueue → all IDs in an end state", dur(r.Drain), "finished: "+fin, "", "")
	t.add("chaos", "valid IDs lost (never deleted at the fake)", itoa(r.Lost), "", "0", verdict(r.Lost == 0))
	t.add("chaos", "IDs without an end state", itoa(r.Unfinished), "", "0", verdict(r.Unfinished == 0))
	t.add("chaos", "valid IDs dead-lettered", itoa(r.ValidDead), "", "0", verdict(r.ValidDead == 0))
	t.add("chaos", "valid IDs presumed deleted (lost answer, no listing could tell)", itoa(r.ValidPresumed), "", "0", verdict(r.ValidPresumed == 0))
	t.add("chaos", "valid IDs deleted by a lost-answer call, verified absent by a listing", itoa(r.Verified), "", "report", "")
	t.add("chaos", "invalid IDs dead exactly once", fmt.Sprintf("%d of %d", r.InvalidDeadOnce, c.Invalid), "", "all", verdict(r.InvalidDeadOnce == c.Invalid))
	t.add("chaos", "invalid IDs dead more than once / not dead", fmt.Sprintf("%d / %d", r.InvalidDeadMulti, r.InvalidNotDead), "", "0 / 0", verdict(r.InvalidDeadMulti == 0 && r.InvalidNotDead == 0))
	t.add("chaos", "invalid IDs presumed deleted", itoa(r.InvalidPresumed), "", "0", verdict(r.InvalidPresumed == 0))
	t.add("chaos", "IDs deleted twice at the fake", itoa(r.DeletedTwice), "", "0", verdict(r.DeletedTwice == 0))
	t.add("chaos", "API calls in all (deletes and reads); reads", fmt.Sprintf("%d; %d", r.TotalCalls, r.Reads),
		fmt.Sprintf("%.2f calls per 100 IDs", float64(r.TotalCalls)*100/float64(c.IDs)), "≤ 5.7 per 100", verdict(float64(r.TotalCalls)*100/float64(c.IDs) <= 5.7))
	t.add("chaos", "calls by endpoint", fmtCalls(r.Endpoints), "", "", "")
	t.add("chaos", "repeat calls: IDs sent again after deletion (calls answering 500001)", itoa(r.RepeatDeletes),
		fmt.Sprintf("%d calls answered 500001", r.Calls["500001"]), "", "")
	t.add("chaos", "calls by outcome", fmtCalls(r.Calls), "", "", "")
	if r.OtherDead > 0 {
		t.add("chaos", "other dead letters (no ID of this run)", itoa(r.OtherDead), "", "0", verdict(false))
	}
}

func fmtCalls(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slicesSort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
