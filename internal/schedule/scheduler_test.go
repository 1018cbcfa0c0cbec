package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

func TestMain(m *testing.M) {
	// bce-sdk-go's logger starts its writer goroutine in an init func.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"))
}

// countingEnqueuer counts producer calls by Key and passes them on.
type countingEnqueuer struct {
	next Enqueuer
	mu   sync.Mutex
	keys map[string]int
	reqs []enqueue.Request
}

func (c *countingEnqueuer) Enqueue(ctx context.Context, r enqueue.Request) (enqueue.Receipt, error) {
	c.mu.Lock()
	if c.keys == nil {
		c.keys = map[string]int{}
	}
	c.keys[r.Key]++
	c.reqs = append(c.reqs, r)
	c.mu.Unlock()
	if c.next == nil {
		return enqueue.Receipt{Kind: r.Kind, IDs: len(r.IDs)}, nil
	}
	return c.next.Enqueue(ctx, r)
}

func (c *countingEnqueuer) calls() (int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	out := map[string]int{}
	for k, v := range c.keys {
		out[k] = v
		n += v
	}
	return n, out
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type quietAsynq struct{}

func (quietAsynq) Debug(...any) {}
func (quietAsynq) Info(...any)  {}
func (quietAsynq) Warn(...any)  {}
func (quietAsynq) Error(...any) {}
func (quietAsynq) Fatal(...any) {}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	// Write then rename, as editors and config management do, so a reader
	// never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the bounded wait ends.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting %s for %s", limit, what)
}

type tickStat struct{ triggers, ran int }

// TestReplicasEnqueueOncePerTick is the acceptance test: three replicas (a
// scheduler and a worker each, on one real Redis) run the same schedule; each
// tick has three triggers and is enqueued once.
func TestReplicasEnqueueOncePerTick(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for several ticks; runs without -short")
	}
	srv := redistest.Start(t)
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	writeFile(t, path, `schedules:
  - name: every-second
    cron: "@every 1s"
    kind: model
    ids: [585, "am-once"]
`)
	admin := srv.Client(t)
	prod, err := enqueue.New(admin, enqueue.Config{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	enq := &countingEnqueuer{next: prod}
	var (
		mu    sync.Mutex
		ticks = map[int64]*tickStat{}
	)
	observe := func(name string, tick time.Time, ran bool) {
		mu.Lock()
		defer mu.Unlock()
		s := ticks[tick.Unix()]
		if s == nil {
			s = &tickStat{}
			ticks[tick.Unix()] = s
		}
		s.triggers++
		if ran {
			s.ran++
		}
	}
	full := func() int { // ticks every replica triggered
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range ticks {
			if s.triggers == 3 {
				n++
			}
		}
		return n
	}

	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	var (
		scheds  []*Scheduler
		servers []*asynq.Server
	)
	for i := range 3 {
		rdb := srv.Client(t) // one client per replica, as in separate processes
		s, err := start(rdb, Config{Path: path, HeartbeatInterval: 500 * time.Millisecond,
			Logger: log.With("replica", i), AsynqLogger: quietAsynq{}})
		if err != nil {
			t.Fatal(err)
		}
		scheds = append(scheds, s)
		h := NewHandler(rdb, enq, HandlerConfig{Logger: log.With("replica", i)})
		h.observe = observe
		w := asynq.NewServerFromRedisClient(rdb, asynq.Config{
			Concurrency: 2, Queues: map[string]int{asynqlayout.Queue: 1},
			Logger: quietAsynq{}, LogLevel: asynq.ErrorLevel, ShutdownTimeout: 2 * time.Second,
		})
		mux := asynq.NewServeMux()
		mux.Handle(TypeScheduledPurge, h)
		if err := w.Start(mux); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, w)
	}
	insp := asynq.NewInspectorFromRedisClient(admin)

	// The entries are visible as `asynq cron ls` shows them.
	waitFor(t, "three scheduler entries in Redis", 5*time.Second, func() bool {
		es, err := insp.SchedulerEntries()
		if err != nil || len(es) != 3 {
			return false
		}
		for _, e := range es {
			if e.Spec != "@every 1s" || e.Task.Type() != TypeScheduledPurge {
				return false
			}
		}
		return true
	})
	waitFor(t, "three ticks triggered by all three replicas", 8*time.Second, func() bool { return full() >= 3 })
	for _, s := range scheds {
		s.Stop()
	}
	waitFor(t, "the last triggers to be handled", 5*time.Second, func() bool {
		q, err := insp.GetQueueInfo(asynqlayout.Queue)
		return err == nil && q.Pending+q.Active+q.Retry == 0
	})
	for _, w := range servers {
		w.Shutdown()
	}

	calls, keys := enq.calls()
	fullTicks := full()
	mu.Lock()
	defer mu.Unlock()
	ran, triggers := 0, 0
	for tick, s := range ticks {
		if s.ran != 1 {
			t.Errorf("tick %d: %d of its %d triggers enqueued, want exactly 1", tick, s.ran, s.triggers)
		}
		ran += s.ran
		triggers += s.triggers
	}
	t.Logf("%d ticks, %d triggers, %d producer enqueues (%d ticks triggered by all 3 replicas)", len(ticks), triggers, calls, fullTicks)
	if calls != len(ticks) || calls != ran {
		t.Errorf("producer called %d times for %d ticks (%d claimed), want one call per tick", calls, len(ticks), ran)
	}
	for k, n := range keys {
		if n != 1 {
			t.Errorf("key %s enqueued %d times", k, n)
		}
	}
	if triggers < 9 {
		t.Errorf("only %d triggers: the replicas did not all fire", triggers)
	}
	// What reached Redis: each enqueue is one small int job and one small
	// string job, waiting in their groups (these test workers aggregate none).
	jobs := 0
	groups, err := insp.Groups(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		ts, err := insp.ListAggregatingTasks(asynqlayout.Queue, g.Group, asynq.PageSize(1000))
		if err != nil {
			t.Fatal(err)
		}
		jobs += len(ts)
	}
	if jobs != 2*calls {
		t.Errorf("%d delete jobs in Redis, want %d (2 per tick)", jobs, 2*calls)
	}
	if t.Failed() {
		t.Log(logs.String())
	}
}

func TestStartFailsOnBadFileWithLine(t *testing.T) {
	srv := redistest.Start(t)
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	writeFile(t, path, "schedules:\n  - name: a\n    cron: '0 25 * * *'\n    kind: model\n    ids: [1]\n")
	_, err := start(srv.Client(t), Config{Path: path, AsynqLogger: quietAsynq{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		t.Fatal("Start accepted a bad cron")
	}
	if want := path + `:3: entry "a": bad cron "0 25 * * *"`; !strings.Contains(err.Error(), want) {
		t.Errorf("Start error = %q, want it to contain %q", err, want)
	}
	_, err = start(srv.Client(t), Config{Path: filepath.Join(t.TempDir(), "missing.yaml")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start on a missing file: %v, want ErrNotExist", err)
	}
}

// TestBadReloadKeepsLastGood edits the file under a running scheduler: a bad
// edit is logged with its line and the last good schedule stays registered;
// a good edit replaces it.
func TestBadReloadKeepsLastGood(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	writeFile(t, path, "schedules:\n  - name: hourly\n    cron: '@hourly'\n    kind: model\n    ids: [1]\n")
	logs := &syncBuffer{}
	s, err := start(rdb, Config{Path: path, SyncInterval: 100 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), AsynqLogger: quietAsynq{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	specs := func() string {
		es, err := insp.SchedulerEntries()
		if err != nil {
			return err.Error()
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Spec)
		}
		return strings.Join(out, ",")
	}
	waitFor(t, "the hourly entry in Redis", 5*time.Second, func() bool { return specs() == "CRON_TZ=UTC @hourly" })

	writeFile(t, path, "schedules:\n  - name: hourly\n    cron: '@hourly'\n    kind: modle\n    ids: [1]\n")
	waitFor(t, "the failed reload to be logged", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "schedule reload failed; keeping the last good schedule")
	})
	if want := fmt.Sprintf(`%s:4: entry \"hourly\": bad kind \"modle\"`, path); !strings.Contains(logs.String(), want) {
		t.Errorf("log does not name the bad line %q:\n%s", want, logs.String())
	}
	time.Sleep(400 * time.Millisecond) // a few more syncs and heartbeats
	if got := specs(); got != "CRON_TZ=UTC @hourly" {
		t.Errorf("after a bad reload Redis lists %q, want the last good entry", got)
	}
	if es := s.Entries(); len(es) != 1 || es[0].Name != "hourly" {
		t.Errorf("Entries() = %+v, want the last good schedule", es)
	}
	if n := strings.Count(logs.String(), "schedule reload failed"); n != 1 {
		t.Errorf("the same bad file was logged %d times, want once", n)
	}

	writeFile(t, path, "schedules:\n  - name: daily\n    cron: '30 4 * * *'\n    timezone: Asia/Shanghai\n    kind: version\n    ids: [\"amv-1\"]\n")
	waitFor(t, "the new entry to replace the old one in Redis", 5*time.Second, func() bool {
		return specs() == "CRON_TZ=Asia/Shanghai 30 4 * * *"
	})
	if !strings.Contains(logs.String(), "schedule reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}
}

// TestHandlerReadsFileAtEachRun drives the handler directly: the file is read
// again at each tick, a retry of the claiming trigger goes on, another
// trigger of the same tick does nothing, and invalid IDs are not retried.
func TestHandlerReadsFileAtEachRun(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	dir := t.TempDir()
	ids := filepath.Join(dir, "ids.txt")
	writeFile(t, ids, "585\nam-one\n")
	enq := &countingEnqueuer{}
	h := NewHandler(rdb, enq, HandlerConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	now := time.Date(2026, 3, 10, 3, 0, 0, 5e6, time.UTC)
	h.now = func() time.Time { return now }
	task := newTrigger(t, Trigger{Name: "nightly", Kind: modelid.KindModel, File: ids, Cron: "CRON_TZ=UTC 0 3 * * *"})
	ctx := context.Background()

	if err := h.process(ctx, task, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := h.process(ctx, task, "t1"); err != nil { // a retry of the claimant
		t.Fatal(err)
	}
	if err := h.process(ctx, task, "t2"); err != nil { // another replica's trigger
		t.Fatal(err)
	}
	if n, keys := enq.calls(); n != 2 || keys["schedule:nightly:"+fmt.Sprint(now.Truncate(time.Hour).Unix())] != 2 {
		t.Errorf("calls = %d %v, want 2 (the claimant and its retry, same key)", n, keys)
	}

	// The next day the file holds other IDs; a trigger recorded as fired at
	// 03:00 but handled at 09:00 still belongs to the 03:00 tick.
	writeFile(t, ids, "[586, \"am-two\"]\n")
	now = now.Add(30 * time.Hour) // 09:00 on the next day
	if err := rdb.Set(ctx, firedPrefix+"t3", now.Add(-6*time.Hour).UnixNano(), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.process(ctx, task, "t3"); err != nil {
		t.Fatal(err)
	}
	last := enq.reqs[len(enq.reqs)-1]
	if got := fmt.Sprint(last.IDs); got != "[586 am-two]" {
		t.Errorf("second day IDs = %s, want the file's new content", got)
	}
	if want := fmt.Sprintf("schedule:nightly:%d", time.Date(2026, 3, 11, 3, 0, 0, 0, time.UTC).Unix()); last.Key != want {
		t.Errorf("key = %q, want %q", last.Key, want)
	}
	if n, _ := rdb.Exists(ctx, firedPrefix+"t3").Result(); n != 0 {
		t.Error("the fire-time record was not removed after the run")
	}

	writeFile(t, ids, "587\nbad id\n")
	now = now.Add(24 * time.Hour)
	err := h.process(ctx, task, "t4")
	var inv *modelid.InvalidIDsError
	if !errors.As(err, &inv) || !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("invalid file: err = %v, want an *InvalidIDsError that skips retries", err)
	}
	if n, _ := enq.calls(); n != 3 {
		t.Errorf("calls = %d after an invalid file, want still 3", n)
	}
	if ttl := rdb.TTL(ctx, claimKey("nightly", time.Date(2026, 3, 11, 3, 0, 0, 0, time.UTC))).Val(); ttl <= 24*time.Hour || ttl > 48*time.Hour {
		t.Errorf("claim TTL = %s, want two periods (48h)", ttl)
	}
}

func newTrigger(t *testing.T, tr Trigger) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(TypeScheduledPurge, b)
}

// recordingRules records submitted rule runs.
type recordingRules struct {
	mu   sync.Mutex
	runs []policy.Options
	spec []policy.Rule
}

func (r *recordingRules) Submit(_ context.Context, rule policy.Rule, o policy.Options) (policy.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, o)
	r.spec = append(r.spec, rule)
	return policy.Record{ID: o.ID, Rule: rule.Name, Status: policy.StatusQueued}, nil
}

// TestHandlerSubmitsRuleRuns: a rule entry's tick becomes one rule run
// named after the tick, whichever replica's trigger claims it; the rule
// travels in the trigger as the file had it.
func TestHandlerSubmitsRuleRuns(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	entries, err := Parse([]byte(`schedules:
  - name: ci-leftovers
    cron: "0 4 * * *"
    kind: version
    delete: {name: "ci-*", older_than: 30d}
    keep: {newest: 3}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	rules := &recordingRules{}
	h := NewHandler(rdb, &countingEnqueuer{}, HandlerConfig{Rules: rules, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	now := time.Date(2026, 3, 10, 4, 0, 1, 0, time.UTC)
	h.now = func() time.Time { return now }
	cfg, err := entries[0].periodicConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"t1", "t1", "t2"} { // the claimant, its retry, another replica
		if err := h.process(ctx, cfg.Task, id); err != nil {
			t.Fatal(err)
		}
	}
	tick := time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)
	if len(rules.runs) != 2 {
		t.Fatalf("%d submissions, want the claimant's and its retry's", len(rules.runs))
	}
	for _, o := range rules.runs {
		if o.ID != policy.TickRunID("ci-leftovers", tick) || o.Mode != policy.ModeRun || o.Trigger != "schedule" || !o.Tick.Equal(tick) || o.OverrideLimit {
			t.Errorf("submitted %+v", o)
		}
	}
	if r := rules.spec[0]; r.Name != "ci-leftovers" || r.Kind != modelid.KindVersion || len(r.Delete) != 1 || r.Keep[0].Newest != 3 {
		t.Errorf("rule %+v", r)
	}

	h = NewHandler(rdb, &countingEnqueuer{}, HandlerConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h.now = func() time.Time { return now.Add(24 * time.Hour) }
	if err := h.process(ctx, cfg.Task, "t3"); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("a worker without rules: err = %v, want SkipRetry", err)
	}
}

// start builds a Scheduler and starts it, as the worker does.
func start(rdb redis.UniversalClient, cfg Config) (*Scheduler, error) {
	s, err := New(rdb, cfg)
	if err != nil {
		return nil, err
	}
	return s, s.Start(context.Background())
}
