package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

func TestMain(m *testing.M) {
	// bce-sdk-go's logger starts its writer goroutine in an init func.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// go-redis keeps redialling a server a test stopped for a second.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

func TestPipeline1000IDs(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: about 10 s")
	}
	t.Parallel()
	for _, tt := range []struct {
		name   string
		faults qianfantest.Faults
	}{
		{"20% transient faults", qianfantest.Faults{Rate503: 0.08, Rate336100: 0.06, Rate500000: 0.06, Seed: 1}},
		{"20% dropped responses", qianfantest.Faults{RateDropAfterDelete: 0.2, Seed: 2}},
		{"10% dropped and 10% reset", qianfantest.Faults{RateDropAfterDelete: 0.1, RateReset: 0.1, Seed: 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc, ids, invalid := workertest.Account(1000, 500)
			fc.Faults = tt.faults
			e := workertest.New(t, fc)
			// With the account listed before the purge, every lost answer
			// is proved by a listing: nothing may end presumed.
			e.Start(t, func(c *worker.Config) { c.InventoryEvery = 10 * time.Minute })
			workertest.Eventually(t, time.Minute, "the first listing", func() bool {
				taken, err := inventory.NewStore(e.RDB).Taken(context.Background())
				return err == nil && !taken.IsZero()
			})
			e.EnqueueMixed(t, ids)
			e.WaitSettled(t, ids, 3*time.Minute)
			e.CheckOutcomes(t, ids, invalid)
			recs, err := ledger.New(e.RDB, ledger.Config{}).LookupMany(context.Background(), modelid.KindModel, ids)
			if err != nil {
				t.Fatal(err)
			}
			verified := 0
			for _, r := range recs {
				if r.State == ledger.StatePresumed {
					t.Errorf("ID %s presumed deleted: %s", r.ID, r.Message)
				}
				if !r.Verified.IsZero() {
					verified++
				}
			}
			st := e.Fake.Stats()
			t.Logf("%d deletions verified by a listing; fake: %d reads, %d deletes, calls %v", verified, st.Reads, st.Deletes, st.Calls)
		})
	}
}

// TestStartFindsMistakesBeforeWork: every configuration mistake stops the
// worker before Asynq takes a task, so queued work stays queued.
func TestStartFindsMistakesBeforeWork(t *testing.T) {
	t.Parallel()
	e := workertest.New(t, qianfantest.Config{})
	p, err := enqueue.New(e.RDB, enqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1)}}); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	const token = "token-0123456789abcdef"
	for _, tc := range []struct {
		name   string
		mutate func(*worker.Config)
		wantIn string
	}{
		{"monitor beyond loopback without credentials", func(c *worker.Config) { c.Monitor.Addr = "0.0.0.0:0" }, "needs credentials"},
		{"short monitor token", func(c *worker.Config) { c.Monitor = worker.MonitorConfig{Addr: "127.0.0.1:0", Token: "short"} }, "at least 16"},
		{"short API token", func(c *worker.Config) { c.API = worker.APIConfig{Addr: "127.0.0.1:0", Tokens: []string{"short"}} }, "at least 16"},
		{"API port in use", func(c *worker.Config) { c.API = worker.APIConfig{Addr: taken.Addr().String(), Tokens: []string{token}} }, "address already in use"},
		{"chosen monitor port in use", func(c *worker.Config) { c.Monitor = worker.MonitorConfig{Addr: taken.Addr().String(), Explicit: true} }, "address already in use"},
		{"bad schedule file", func(c *worker.Config) { c.Schedule = "/nonexistent/schedule.yaml" }, "schedule"},
	} {
		cfg := e.Config()
		cfg.Logger = (&workertest.Log{}).Logger()
		tc.mutate(&cfg)
		w, err := worker.New(e.RDB, cfg)
		if err == nil {
			err = w.Start()
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantIn) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.wantIn)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("%s: the error shows a token", tc.name)
		}
	}
	q, err := asynq.NewInspectorFromRedisClient(e.RDB).GetQueueInfo(asynqlayout.Queue)
	if err != nil || q.Aggregating+q.Pending != 1 || q.Active != 0 || e.Fake.Stats().Deletes != 0 {
		t.Errorf("queue %+v (%v), fake calls %v: the refused workers took work", q, err, e.Fake.Stats().Calls)
	}
	// The default monitor address being taken only warns: a second worker
	// on the same host still starts.
	cfg := e.Config()
	log := &workertest.Log{}
	cfg.Logger = log.Logger()
	cfg.Monitor = worker.MonitorConfig{Addr: taken.Addr().String()}
	w, err := worker.New(e.RDB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("the default monitor address taken stopped the worker: %v", err)
	}
	w.Shutdown()
	if !strings.Contains(log.String(), "monitor not started") {
		t.Errorf("no warning about the taken monitor address:\n%s", log)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMonitor: the monitor serves the UI, its API, metrics and health, and
// /readyz turns 503 without Redis.
func TestMonitor(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: a few seconds")
	}
	t.Parallel()
	// Models 5 and 6 exist; 7 does not.
	e := workertest.New(t, qianfantest.Config{Inventory: workertest.Models(int64(5), int64(6))})
	w, _ := e.Start(t, func(c *worker.Config) {
		c.Monitor.Addr = "127.0.0.1:0"
		c.QPS = 50
		c.BatchMaxWait = time.Second
	})
	base := "http://" + w.MonitorAddr()
	workertest.Eventually(t, 15*time.Second, "/readyz 200", func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })
	p, err := enqueue.New(e.RDB, enqueue.Config{BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(5), modelid.IntID(6), modelid.IntID(7)}}); err != nil {
		t.Fatal(err)
	}
	// 5 and 6 are deleted after a bisection; 7 is dead-lettered.
	workertest.Eventually(t, 20*time.Second, "the dead letter in /metrics", func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, "qfpurge_dead_letters 1") &&
			strings.Contains(body, `qfpurge_ids_total{id_type="int",kind="model",state="deleted"} 2`)
	})
	if code, body := get(t, base+"/monitoring/"); code != 200 || !strings.Contains(body, `<div id="root">`) {
		t.Errorf("GET /monitoring/ = %d, want the asynqmon page", code)
	}
	if code, body := get(t, base+"/monitoring/api/queues"); code != 200 || !strings.Contains(body, `"queue":"qfpurge"`) {
		t.Errorf("GET /monitoring/api/queues = %d %s, want the qfpurge queue", code, body)
	}
	if code, body := get(t, base+"/monitoring/api/queues/qfpurge/archived_tasks"); code != 200 || !strings.Contains(body, "1 int ID: 7") {
		t.Errorf("archived tasks = %d %s, want the dead letter for ID 7", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`asynq_queue_size{queue="qfpurge"}`,
		`qfpurge_api_calls_total{id_type="int",kind="model",outcome="500001"}`,
		`qfpurge_batch_splits_total{kind="model",reason="bisect"} 2`, // [5 6 7] → [5] [6 7] → [6] [7]
		`qfpurge_ids_total{id_type="int",kind="model",state="dead"} 1`,
		`qfpurge_fleet_limiter_wait_seconds_count`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("GET /healthz = %d", code)
	}
	e.Redis.Stop()
	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with Redis down = %d, want 503", code)
	}
}

const (
	apiToken   = "api-test-token-0123456789"
	apiToken2  = "api-test-token-rotated-987"
	apiPoison  = 404404
	apiTimeout = 30 * time.Second
)

type apiClient struct {
	t    *testing.T
	base string
}

func (c apiClient) call(method, path, token, body string) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

type apiState struct {
	State   string `json:"state"`
	LogID   string `json:"log_id"`
	Code    int    `json:"code"`
	Message string `json:"message"`
	At      string `json:"at"`
}

// outcome polls GET /v1/deletions/{id} until the ID has an outcome.
func (c apiClient) outcome(id string) apiState {
	c.t.Helper()
	var st apiState
	workertest.Eventually(c.t, apiTimeout, "an outcome for "+id, func() bool {
		code, _, body := c.call("GET", "/v1/deletions/"+id, apiToken2, "")
		if code != http.StatusOK || json.Unmarshal(body, &st) != nil {
			c.t.Fatalf("GET %s: %d %s", id, code, body)
		}
		return st.State != "pending" && st.State != "unknown"
	})
	return st
}

// TestAPIEndToEnd: refused requests enqueue nothing; accepted ones are
// deleted or dead-lettered with one event per outcome; a dead letter can be
// listed and requeued through the API.
func TestAPIEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: a few seconds")
	}
	t.Parallel()
	// The account holds every ID the test deletes but apiPoison.
	e := workertest.New(t, qianfantest.Config{Inventory: workertest.Models(int64(101), int64(102), int64(103), "am-a", "am-b")})
	// Batch size 2 and even counts per ID type: every batch is ready at
	// once, so nothing waits for Asynq's aggregation tick.
	w, log := e.Start(t, func(c *worker.Config) {
		c.API = worker.APIConfig{Addr: "127.0.0.1:0", MaxBody: 256, Tokens: []string{apiToken, apiToken2}}
		c.BatchSize = 2
		c.BatchMaxWait = time.Second
	})
	t.Cleanup(func() {
		for _, tok := range []string{apiToken, apiToken2} {
			if strings.Contains(log.String(), tok) {
				t.Errorf("a token reached the worker's log")
			}
		}
	})
	c := apiClient{t: t, base: "http://" + w.APIAddr()}
	ctx := context.Background()
	good := `{"model_ids":[101,102,404404,103,"am-a","am-b"],"kind":"model"}`

	for _, tc := range []struct {
		name, token, body string
		status            int
	}{
		{"no token", "", good, 401},
		{"wrong token", apiToken + "-not", good, 401},
		{"bad JSON", apiToken, `{"model_ids":[101,`, 400},
		{"invalid ID", apiToken, `{"model_ids":[101,-5]}`, 400},
		{"unknown kind", apiToken, `{"model_ids":[101],"kind":"dataset"}`, 400},
		{"oversize", apiToken, `{"model_ids":[` + strings.Repeat("1001,", 60) + `1]}`, 413},
	} {
		code, hdr, body := c.call("POST", "/v1/deletions", tc.token, tc.body)
		if code != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, code, tc.status, body)
		}
		if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, hdr.Get("WWW-Authenticate"))
		}
		var er struct{ Error string }
		if json.Unmarshal(body, &er) != nil || er.Error == "" {
			t.Errorf("%s: no JSON error: %s", tc.name, body)
		}
	}
	qs, err := asynq.NewInspectorFromRedisClient(e.RDB).Queues()
	if err != nil || slices.Contains(qs, asynqlayout.Queue) || e.Fake.Stats().Deletes != 0 {
		t.Fatalf("refused requests enqueued something: queues %v, fake stats %+v", qs, e.Fake.Stats())
	}

	code, _, body := c.call("POST", "/v1/deletions", apiToken, good)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, body)
	}
	var rc struct {
		IDs       int `json:"ids"`
		IntIDs    int `json:"int_ids"`
		StringIDs int `json:"string_ids"`
		Batches   []struct {
			TaskID string `json:"task_id"`
		} `json:"batches"`
	}
	if err := json.Unmarshal(body, &rc); err != nil || rc.IDs != 6 || rc.IntIDs != 4 || rc.StringIDs != 2 || len(rc.Batches) != 3 {
		t.Fatalf("receipt %s (%v)", body, err)
	}
	for _, id := range []string{"101", "102", "103", "am-a", "am-b"} {
		st := c.outcome(id)
		if st.State != string(ledger.StateDeleted) || st.LogID == "" || st.At == "" {
			t.Errorf("ID %s: %+v, want deleted with a log_id", id, st)
		}
	}
	if st := c.outcome("404404"); st.State != string(ledger.StateDead) || st.Code != 500001 {
		t.Errorf("poison ID: %+v, want dead with code 500001", st)
	}
	for _, id := range []any{int64(101), int64(102), int64(103), "am-a", "am-b"} {
		if n := e.Fake.DeleteCount(qianfantest.KindModel, id); n != 1 {
			t.Errorf("fake deleted %v %d times, want 1", id, n)
		}
	}

	// One event per outcome, readable with redis-cli XRANGE.
	evs, err := e.RDB.XRange(ctx, ledger.EventStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for _, ev := range evs {
		outcomes[ev.Values["id"].(string)] = ev.Values["outcome"].(string)
	}
	wantOutcomes := map[string]string{"101": "deleted", "102": "deleted", "103": "deleted", "am-a": "deleted", "am-b": "deleted", "404404": "dead"}
	if len(evs) != 6 || !maps.Equal(outcomes, wantOutcomes) {
		t.Fatalf("events: %d %v, want one per outcome %v", len(evs), outcomes, wantOutcomes)
	}
	if cli, err := exec.LookPath("redis-cli"); err == nil {
		host, port, _ := strings.Cut(e.Redis.Addr, ":")
		out, err := exec.Command(cli, "-h", host, "-p", port, "XRANGE", ledger.EventStream, "-", "+").Output()
		if err != nil {
			t.Fatalf("redis-cli XRANGE: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		n := 0
		for i, l := range lines {
			if l == "outcome" && i+1 < len(lines) && (lines[i+1] == "deleted" || lines[i+1] == "dead") {
				n++
			}
		}
		if n != 6 || !strings.Contains(string(out), "500001") {
			t.Errorf("redis-cli XRANGE shows %d outcomes, want 6:\n%s", n, out)
		}
	} else {
		t.Log("redis-cli not installed; XRANGE checked with go-redis only")
	}

	// The dead letter is listed, and requeued through the API it dies again.
	code, _, body = c.call("GET", "/v1/deadletters", apiToken, "")
	var page struct {
		DeadLetters []struct {
			EntryID string `json:"entry_id"`
			Code    int    `json:"code"`
		} `json:"dead_letters"`
	}
	if err := json.Unmarshal(body, &page); code != 200 || err != nil || len(page.DeadLetters) != 1 || page.DeadLetters[0].Code != 500001 {
		t.Fatalf("dead letters: %d %s", code, body)
	}
	code, _, body = c.call("POST", "/v1/deadletters/requeue", apiToken, `{"entry_ids":["`+page.DeadLetters[0].EntryID+`"]}`)
	if code != 200 || !strings.Contains(string(body), `"requeued":1`) || !strings.Contains(string(body), `"archived_deleted":1`) {
		t.Fatalf("requeue: %d %s", code, body)
	}
	if st := c.outcome("404404"); st.State != string(ledger.StateDead) {
		t.Errorf("requeued poison ID: %+v, want dead again", st)
	}
	if n := e.RDB.XLen(ctx, ledger.EventStream).Val(); n != 7 {
		t.Errorf("%d events after the requeued ID died again, want 7", n)
	}
}

// BenchmarkFleetQPS: two workers with QPS 5 share one Redis and drain 3,000
// IDs (30 calls of 100) against a fake that rejects the 6th call in any
// second. It reports the drain time against the 5 calls/s floor and the
// code-18 rejections:
//
//	go test -run '^$' -bench FleetQPS -benchtime 1x ./internal/worker
func BenchmarkFleetQPS(b *testing.B) {
	for range b.N {
		// An account the in-use check can list: an open-world fake answers
		// no listing, and every batch would wait for one.
		inv := qianfantest.NewInventory(qianfantest.Generate{Models: 3000, Seed: 42}, time.Now())
		e := workertest.New(b, qianfantest.Config{QPS: 5, Inventory: inv})
		for range 2 {
			e.Start(b, func(c *worker.Config) { c.QPS = 5; c.Logger = (&workertest.Log{}).Logger() })
		}
		p, err := enqueue.New(e.RDB, enqueue.Config{})
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]modelid.ID, len(inv.Models))
		for i, m := range inv.Models {
			ids[i] = modelid.IntID(m.ID)
		}
		start := time.Now()
		if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: ids}); err != nil {
			b.Fatal(err)
		}
		workertest.Eventually(b, 2*time.Minute, "the drain", func() bool { return e.Fake.Stats().IDsDeleted >= len(ids) })
		drained := time.Since(start)
		st := e.Fake.Stats()
		calls := st.Calls["ok"]
		floor := time.Duration(calls-1) * time.Second / 5 // first call at 0, then one per 200 ms
		b.ReportMetric(drained.Seconds(), "drain-s")
		b.ReportMetric(drained.Seconds()/floor.Seconds(), "x-limit")
		b.ReportMetric(float64(st.Calls["18"]), "code18")
		b.Logf("2 workers, QPS 5: %d IDs in %d calls drained in %s; the 5 calls/s limit allows %s at best (%.0f%% over); code-18 rejections: %d; all calls: %v",
			st.IDsDeleted, calls, drained.Round(time.Millisecond), floor, 100*(drained.Seconds()/floor.Seconds()-1), st.Calls["18"], st.Calls)
		if st.Calls["18"] != 0 {
			b.Errorf("%d calls were rejected with code 18", st.Calls["18"])
		}
	}
}

// TestRevokedKeyPausesThenResumes: a key revoked while two workers run
// pauses the fleet (every batch stays queued, /readyz says why, nothing is
// dead-lettered, no worker keeps calling with the bad key but the probe);
// once the key is restored every ID is deleted, without a restart or a
// requeue.
func TestRevokedKeyPausesThenResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: several seconds")
	}
	t.Parallel()
	fc, ids, invalid := workertest.Account(300, 0)
	e := workertest.New(t, fc)
	var monitorAddr string
	for i := range 2 {
		w, _ := e.Start(t, func(c *worker.Config) {
			c.PauseProbe = time.Second
			if i == 0 {
				c.Monitor.Addr = "127.0.0.1:0"
			}
		})
		if i == 0 {
			monitorAddr = w.MonitorAddr()
		}
	}
	e.Fake.Revoke(qianfantest.DefaultAccessKey)
	e.EnqueueMixed(t, ids)
	ps := fleet.NewPauseStore(e.RDB)
	workertest.Eventually(t, 30*time.Second, "the fleet to pause", func() bool {
		st, err := ps.Status(context.Background())
		return err == nil && st.State == fleet.Paused
	})
	code, body := get(t, "http://"+monitorAddr+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "unknown access key") {
		t.Errorf("/readyz while paused = %d %q; want 503 naming the problem", code, body)
	}
	// Calls in flight when the pause began end at the first probe; from
	// then on, watch three more probes: no delete call, one read each.
	first := e.Fake.Stats().Reads
	workertest.Eventually(t, 10*time.Second, "a probe", func() bool { return e.Fake.Stats().Reads > first })
	before, start := e.Fake.Stats(), time.Now()
	workertest.Eventually(t, 15*time.Second, "three more probes", func() bool { return e.Fake.Stats().Reads >= before.Reads+3 })
	after, elapsed := e.Fake.Stats(), time.Since(start)
	if d := after.Deletes - before.Deletes; d != 0 {
		t.Errorf("%d delete calls in %s while paused, want 0", d, elapsed)
	}
	if r := after.Reads - before.Reads; r > int(elapsed/time.Second)+2 {
		t.Errorf("%d read calls in %s while paused; the fleet probes once a second", r, elapsed.Round(time.Millisecond))
	}
	if dls, _ := deadletter.NewStore(e.RDB).Count(context.Background()); dls != 0 {
		t.Errorf("%d dead letters while paused, want 0 (not even the invalid IDs: no call names them)", dls)
	}
	if e.Drained() {
		t.Error("the queue is empty while paused: batches must stay queued")
	}

	e.Fake.Restore(qianfantest.DefaultAccessKey)
	e.WaitSettled(t, ids, time.Minute)
	e.CheckOutcomes(t, ids, invalid)
	evs, err := e.RDB.XRange(context.Background(), ledger.EventStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, ev := range evs {
		if o := ev.Values["outcome"]; o == "paused" || o == "resumed" {
			events = append(events, o.(string))
		}
	}
	if !slices.Equal(events, []string{"paused", "resumed"}) {
		t.Errorf("fleet events %v, want paused then resumed", events)
	}
	if st, _ := ps.Status(context.Background()); st.State != fleet.Running {
		t.Errorf("status after restoring %+v, want running", st)
	}
}
