// Package workertest runs qfpurge workers end to end for tests: a real
// redis-server (package redistest), the fake Qianfan over HTTP, a worker in
// this process (Start) or the environment for one in a child process
// (Environ), and the checks every end-to-end test makes: every valid ID
// deleted exactly once at the fake, every invalid one dead exactly once.
package workertest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/worker"
)

// Env is a real Redis and a Qianfan (the fake, or any handler) on loopback.
type Env struct {
	Redis *redistest.Server
	RDB   *redis.Client
	// Fake is the fake Qianfan; nil when NewWithHandler was given another.
	Fake *qianfantest.Server
	// URL is Qianfan's base URL.
	URL string
}

// New starts a Redis and a fake Qianfan configured by fc.
func New(t testing.TB, fc qianfantest.Config) *Env {
	t.Helper()
	fake := qianfantest.New(fc)
	e := NewWithHandler(t, fake)
	e.Fake = fake
	return e
}

// NewWithHandler starts a Redis and serves h as Qianfan.
func NewWithHandler(t testing.TB, h http.Handler) *Env {
	t.Helper()
	e := &Env{Redis: redistest.Start(t)}
	e.RDB = e.Redis.Client(t)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

// Config is a worker configuration for tests: the fake's credentials,
// aggregation waits of a second, no QPS cap, no listeners.
func (e *Env) Config() worker.Config {
	return worker.Config{
		AccessKey:       qianfantest.DefaultAccessKey,
		SecretKey:       qianfantest.DefaultSecretKey,
		BaseURL:         e.URL,
		BatchWait:       time.Second,
		BatchMaxWait:    2 * time.Second,
		VerifyWait:      5 * time.Second,
		SweepInterval:   2 * time.Second,
		ShutdownTimeout: 5 * time.Second,
	}
}

// Environ is the environment a worker or enqueue process needs for Env.
func (e *Env) Environ() []string {
	return []string{
		"REDIS_URL=" + e.Redis.URL(),
		"QIANFAN_ACCESS_KEY=" + qianfantest.DefaultAccessKey,
		"QIANFAN_SECRET_KEY=" + qianfantest.DefaultSecretKey,
		"QIANFAN_BASE_URL=" + e.URL,
	}
}

// FastFlags are the command-line form of Config's test settings.
var FastFlags = []string{"--batch-wait", "1s", "--batch-max-wait", "2s", "--qps", "0",
	"--verify-wait", "5s", "--sweep-interval", "2s", "--shutdown-timeout", "5s", "--log-level", "warn",
	"--monitor-addr", ""}

// Start runs a worker on Env in this process until the test ends; mutate
// adjusts Config first. Its logs are shown when the test fails.
func (e *Env) Start(t testing.TB, mutate ...func(*worker.Config)) (*worker.Worker, *Log) {
	t.Helper()
	cfg := e.Config()
	log := &Log{}
	cfg.Logger = log.Logger()
	for _, m := range mutate {
		m(&cfg)
	}
	w, err := worker.New(e.RDB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Shutdown()
		if t.Failed() {
			t.Logf("worker log:\n%s", log.String())
		}
	})
	return w, log
}

// IDs returns n model IDs, 60% int and 40% string, and five invalid ones
// among them.
func IDs(n int) (all, invalid []modelid.ID) {
	for i := 1; i <= n; i++ {
		if i%5 < 3 {
			all = append(all, modelid.IntID(int64(i)))
		} else {
			all = append(all, modelid.StringID(fmt.Sprintf("am-%05d", i)))
		}
	}
	for _, i := range []int{13, 300, 555, 704, 999} {
		if i <= n {
			invalid = append(invalid, all[i-1])
		}
	}
	return all, invalid
}

// Account is a fake Qianfan account holding n models to purge and extra
// models more that stay, one version each, and the IDs to purge: the n
// models, 60% by int ID and 40% by string ID, with five of them replaced by
// IDs the account never held (the invalid ones). Pass cfg to New.
func Account(n, extra int) (cfg qianfantest.Config, ids, invalid []modelid.ID) {
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: n + extra, Versions: 1, Seed: 42}, time.Now())
	for i, m := range inv.Models[:n] {
		if i%5 < 3 {
			ids = append(ids, modelid.IntID(m.ID))
		} else {
			ids = append(ids, modelid.StringID(m.IDStr))
		}
	}
	for k, i := range []int{13, 300, 555, 704, 999} {
		if i > n {
			continue
		}
		bad := modelid.IntID(int64(90_000_000 + k))
		if k%2 == 1 {
			bad = modelid.StringID(fmt.Sprintf("am-never%05d", k))
		}
		ids[i-1] = bad
		invalid = append(invalid, bad)
	}
	return qianfantest.Config{Inventory: inv}, ids, invalid
}

// FakeID is id as the fake's Config.Invalid and DeleteCount take it.
func FakeID(id modelid.ID) any {
	if n, ok := id.Int(); ok {
		return n
	}
	return id.String()
}

// FakeIDs maps FakeID over ids.
func FakeIDs(ids []modelid.ID) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = FakeID(id)
	}
	return out
}

// EnqueueMixed hands model IDs over the way other systems do: one bulk
// request for the first half and single-ID jobs from eight concurrent
// producers for the rest.
func (e *Env) EnqueueMixed(t testing.TB, ids []modelid.ID) {
	t.Helper()
	p, err := enqueue.New(e.RDB, enqueue.Config{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	half := len(ids) / 2
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids[:half]}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := half + w; i < len(ids); i += 8 {
				if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids[i : i+1]}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Eventually polls cond every 50ms until it holds, failing the test after
// timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Drained reports whether the queue holds nothing waiting, running,
// scheduled, retrying or aggregating.
func (e *Env) Drained() bool {
	q, err := asynq.NewInspectorFromRedisClient(e.RDB).GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		return false
	}
	return q.Pending+q.Active+q.Scheduled+q.Retry+q.Aggregating == 0
}

// WaitSettled waits until every model ID has an outcome and the queue is
// drained.
func (e *Env) WaitSettled(t testing.TB, ids []modelid.ID, timeout time.Duration) {
	t.Helper()
	l := ledger.New(e.RDB, ledger.Config{})
	open := len(ids)
	Eventually(t, timeout, "every ID to have an outcome and the queue to drain", func() bool {
		recs, err := l.LookupMany(context.Background(), modelid.KindModel, ids)
		if err != nil {
			return false
		}
		open = 0
		for _, r := range recs {
			if r.State == "" || r.State == ledger.StatePending {
				open++
			}
		}
		return open == 0 && e.Drained()
	})
}

// CheckOutcomes asserts that every valid model ID was deleted exactly once at
// the fake and not dead-lettered, and every invalid one is dead exactly once
// with 500001 and a log_id, with one archived task each.
func (e *Env) CheckOutcomes(t testing.TB, ids, invalid []modelid.ID) {
	t.Helper()
	ctx := context.Background()
	bad := map[modelid.ID]bool{}
	for _, id := range invalid {
		bad[id] = true
	}
	dls, err := deadletter.NewStore(e.RDB).All(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	deadCount := map[modelid.ID]int{}
	for _, d := range dls {
		deadCount[d.ID]++
		if !bad[d.ID] {
			t.Errorf("valid ID %s dead-lettered: %s", d.ID, d.Reason())
		}
		if d.Code != 500001 || d.LogID == "" {
			t.Errorf("dead letter %s has code %d log_id %q, want 500001 with a log_id", d.ID, d.Code, d.LogID)
		}
	}
	for _, id := range ids {
		n := e.Fake.DeleteCount(qianfantest.KindModel, FakeID(id))
		switch {
		case bad[id] && deadCount[id] != 1:
			t.Errorf("invalid ID %s dead-lettered %d times, want once", id, deadCount[id])
		case bad[id] && n != 0:
			t.Errorf("invalid ID %s deleted %d times", id, n)
		case !bad[id] && n != 1:
			t.Errorf("valid ID %s deleted %d times at the fake, want 1", id, n)
		}
	}
	q, err := asynq.NewInspectorFromRedisClient(e.RDB).GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if q.Archived != len(invalid) {
		t.Errorf("%d archived tasks, want one per invalid ID (%d)", q.Archived, len(invalid))
	}
	if st := e.Fake.Stats(); st.IDsDeleted != len(ids)-len(invalid) {
		t.Errorf("fake deleted %d IDs, want %d", st.IDsDeleted, len(ids)-len(invalid))
	}
}

// Log is a log sink safe for concurrent writes.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logger is a text slog.Logger at info writing to l.
func (l *Log) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// Models is an account holding exactly the given models, each with both
// of its ID forms: an int ID (int64) gets the string form am-w<int>, a
// string ID gets an int form from 900,000,001 on. IDs left out do not
// exist, as a typo would not.
func Models(ids ...any) *qianfantest.Inventory {
	inv := &qianfantest.Inventory{}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	next := int64(900_000_000)
	for _, id := range ids {
		m := qianfantest.Model{Name: fmt.Sprint("model-", id), CreateTime: at}
		switch v := id.(type) {
		case int64:
			m.ID, m.IDStr = v, fmt.Sprintf("am-w%d", v)
		case string:
			next++
			m.ID, m.IDStr = next, v
		default:
			panic(fmt.Sprintf("workertest.Models: %T is neither an int64 nor a string ID", id))
		}
		inv.Models = append(inv.Models, m)
	}
	return inv
}
