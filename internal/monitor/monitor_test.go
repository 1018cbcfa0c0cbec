package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"),
		// go-redis's pool reaper outlives Close by up to a tick.
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		// After Redis is stopped, go-redis keeps redialling for a second.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}

type bundle struct {
	redis *redistest.Server
	rdb   *redis.Client
	insp  *asynq.Inspector
	mon   *monitor.Server
	met   *monitor.Metrics
	base  string
}

func setup(t *testing.T, cfg monitor.Config) *bundle {
	t.Helper()
	b := &bundle{redis: redistest.Start(t)}
	b.rdb = b.redis.Client(t)
	b.insp = asynq.NewInspectorFromRedisClient(b.rdb)
	log := slog.New(slog.DiscardHandler)
	b.met = monitor.NewMetrics(b.rdb, b.insp, log)
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = log
	mon, err := monitor.New(b.rdb, b.insp, b.met, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Shutdown(context.Background()) })
	b.mon, b.base = mon, "http://"+mon.Addr()
	return b
}

// startAsynq runs an Asynq server on the bundle's Redis, as the worker does.
func (b *bundle) startAsynq(t *testing.T) {
	t.Helper()
	srv := asynq.NewServerFromRedisClient(b.rdb, asynq.Config{
		Queues: map[string]int{asynqlayout.Queue: 1}, LogLevel: asynq.FatalLevel,
		GroupAggregator: &tasks.Aggregator{}, GroupGracePeriod: time.Second,
	})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return errors.New("not in this test")
	})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	// The first heartbeat is written just after Start returns.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if s, err := b.insp.Servers(); err == nil && len(s) > 0 {
			return
		}
	}
	t.Fatal("the asynq server did not register within 5s")
}

func get(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestMonitorEndpoints(t *testing.T) {
	t.Parallel()
	b := setup(t, monitor.Config{})
	b.startAsynq(t)
	// A scheduled batch sits in the qfpurge queue while the test looks.
	task, err := tasks.NewBatchTask(tasks.Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1001), modelid.IntID(1002)}}, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(b.rdb).Enqueue(task, asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.met.Call(modelid.KindModel, modelid.IDInt, "ok", 2, 120*time.Millisecond)
	b.met.Outcome(modelid.KindModel, modelid.IDInt, ledger.StateDeleted, 2)
	b.met.Outcome(modelid.KindModel, modelid.IDString, ledger.StateDead, 1)
	b.met.Split(modelid.KindModel, "bisect")
	b.met.Retry(modelid.KindVersion, "throttled")
	b.met.LimiterWait(50 * time.Millisecond)
	if err := b.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: deadletter.Stream, Values: map[string]any{"id": "x"}}).Err(); err != nil {
		t.Fatal(err)
	}

	t.Run("ui", func(t *testing.T) {
		code, body := get(t, b.base+"/monitoring/")
		if code != 200 || !strings.Contains(body, "<div id=\"root\">") {
			t.Fatalf("GET /monitoring/ = %d, want asynqmon's page; body starts %.200q", code, body)
		}
	})
	t.Run("api lists the queue", func(t *testing.T) {
		code, body := get(t, b.base+"/monitoring/api/queues")
		if code != 200 {
			t.Fatalf("GET /monitoring/api/queues = %d: %s", code, body)
		}
		var resp struct {
			Queues []struct {
				Queue     string `json:"queue"`
				Scheduled int    `json:"scheduled"`
			} `json:"queues"`
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Queues) != 1 || resp.Queues[0].Queue != asynqlayout.Queue || resp.Queues[0].Scheduled != 1 {
			t.Fatalf("queues = %+v, want qfpurge with 1 scheduled", resp.Queues)
		}
	})
	t.Run("api formats the payload", func(t *testing.T) {
		code, body := get(t, b.base+"/monitoring/api/queues/qfpurge/scheduled_tasks")
		if code != 200 || !strings.Contains(body, "model · 2 int IDs: 1001, 1002") {
			t.Fatalf("scheduled tasks = %d %s, want the formatted payload", code, body)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		code, body := get(t, b.base+"/metrics")
		if code != 200 {
			t.Fatalf("GET /metrics = %d", code)
		}
		for _, want := range []string{
			`asynq_queue_size{queue="qfpurge"} 1`,
			`asynq_tasks_enqueued_total{queue="qfpurge",state="scheduled"} 1`,
			`qfpurge_queue_metrics_up 1`,
			`qfpurge_ids_total{id_type="int",kind="model",state="deleted"} 2`,
			`qfpurge_ids_total{id_type="string",kind="model",state="dead"} 1`,
			`qfpurge_api_calls_total{id_type="int",kind="model",outcome="ok"} 1`,
			`qfpurge_api_call_duration_seconds_bucket{kind="model",le="0.25"} 1`,
			`qfpurge_api_call_batch_size_sum{kind="model"} 2`,
			`qfpurge_batch_splits_total{kind="model",reason="bisect"} 1`,
			`qfpurge_batch_retries_total{kind="version",reason="throttled"} 1`,
			`qfpurge_fleet_limiter_wait_seconds_count 1`,
			`qfpurge_dead_letters 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
	t.Run("healthz", func(t *testing.T) {
		if code, body := get(t, b.base+"/healthz"); code != 200 {
			t.Fatalf("GET /healthz = %d %s", code, body)
		}
	})
	t.Run("readyz", func(t *testing.T) {
		if code, body := get(t, b.base+"/readyz"); code != 200 {
			t.Fatalf("GET /readyz = %d %s", code, body)
		}
	})
}

func TestReadyzWithoutAsynqServer(t *testing.T) {
	t.Parallel()
	b := setup(t, monitor.Config{})
	if code, _ := get(t, b.base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz with no asynq server = %d, want 503", code)
	}
}

func TestRedisDown(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for go-redis to give up on a stopped Redis: about 3 s")
	}
	t.Parallel()
	b := setup(t, monitor.Config{})
	b.startAsynq(t)
	if code, body := get(t, b.base+"/readyz"); code != 200 {
		t.Fatalf("GET /readyz = %d %s", code, body)
	}
	b.redis.Stop()
	if code, _ := get(t, b.base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with Redis down = %d, want 503", code)
	}
	if code, _ := get(t, b.base+"/healthz"); code != 200 {
		t.Errorf("GET /healthz with Redis down = %d, want 200", code)
	}
	// The process's own series still come out when the Redis-backed ones fail.
	code, body := get(t, b.base+"/metrics")
	if code != 200 || !strings.Contains(body, "qfpurge_queue_metrics_up 0") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics with Redis down = %d, want 200 with qfpurge_queue_metrics_up 0 and the Go series", code)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, monitor.Config{Token: "s3cret-token-0123", User: "ops", Password: "pa55"})
	for _, tc := range []struct {
		name string
		path string
		hdr  []string
		want int
	}{
		{"ui without credentials", "/monitoring/", nil, 401},
		{"metrics without credentials", "/metrics", nil, 401},
		{"wrong token", "/monitoring/api/queues", []string{"Authorization", "Bearer nope"}, 401},
		{"scheme in lower case", "/monitoring/api/queues", []string{"Authorization", "bearer s3cret-token-0123"}, 200},
		{"token", "/monitoring/api/queues", []string{"Authorization", "Bearer s3cret-token-0123"}, 200},
		{"metrics with token", "/metrics", []string{"Authorization", "Bearer s3cret-token-0123"}, 200},
		{"basic", "/monitoring/", []string{"Authorization", "Basic b3BzOnBhNTU="}, 200}, // ops:pa55
		{"wrong password", "/monitoring/", []string{"Authorization", "Basic b3BzOnBhNTY="}, 401},
		{"healthz is open", "/healthz", nil, 200},
		{"readyz is open", "/readyz", nil, 503}, // no asynq server here
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := get(t, b.base+tc.path, tc.hdr...); code != tc.want {
				t.Errorf("GET %s = %d, want %d", tc.path, code, tc.want)
			}
		})
	}
}

func do(t *testing.T, method, url string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func paused(t *testing.T, b *bundle) bool {
	t.Helper()
	n, err := b.rdb.Exists(context.Background(), asynqlayout.Paused(asynqlayout.Queue)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestCrossSiteRequestsRefused: a page on another site cannot pause the
// queue or archive tasks, with or without the browser's cached basic
// credentials; the UI's own requests still work.
func TestCrossSiteRequestsRefused(t *testing.T) {
	t.Parallel()
	for _, cfg := range []monitor.Config{{}, {User: "ops", Password: "pa55"}} {
		b := setup(t, cfg)
		b.startAsynq(t)
		if _, err := asynq.NewClientFromRedisClient(b.rdb).Enqueue(asynq.NewTask("x", nil), asynq.Queue(asynqlayout.Queue), asynq.ProcessIn(time.Hour)); err != nil {
			t.Fatal(err)
		}
		creds := map[string]string{}
		if cfg.User != "" {
			creds["Authorization"] = "Basic b3BzOnBhNTU=" // ops:pa55
		}
		with := func(kv ...string) map[string]string {
			m := map[string]string{}
			maps.Copy(m, creds)
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		}
		pause := b.base + "/monitoring/api/queues/" + asynqlayout.Queue + ":pause"
		for name, hdr := range map[string]map[string]string{
			"cross-site fetch":                  with("Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site", "Content-Type", "text/plain"),
			"cross-site form":                   with("Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site", "Content-Type", "application/x-www-form-urlencoded"),
			"same-site other port":              with("Origin", "http://127.0.0.1:1", "Sec-Fetch-Site", "same-site"),
			"foreign Origin, no Sec-Fetch-Site": with("Origin", "https://evil.example"),
		} {
			if code := do(t, "POST", pause, hdr); code != http.StatusForbidden {
				t.Errorf("%+v: %s: pause answered %d, want 403", cfg, name, code)
			}
		}
		archive := b.base + "/monitoring/api/queues/" + asynqlayout.Queue + "/scheduled_tasks:archive_all"
		if code := do(t, "POST", archive, with("Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")); code != http.StatusForbidden {
			t.Errorf("%+v: archive_all answered %d, want 403", cfg, code)
		}
		if q, _ := b.insp.GetQueueInfo(asynqlayout.Queue); paused(t, b) || q.Scheduled != 1 {
			t.Fatalf("%+v: a refused request changed the queue: paused %v, scheduled %d", cfg, q.Paused, q.Scheduled)
		}
		// The UI's own request (same origin), and curl (no browser headers).
		if code := do(t, "POST", pause, with("Origin", b.base, "Sec-Fetch-Site", "same-origin")); code != http.StatusNoContent || !paused(t, b) {
			t.Errorf("%+v: same-origin pause answered %d", cfg, code)
		}
		if code := do(t, "POST", b.base+"/monitoring/api/queues/"+asynqlayout.Queue+":resume", creds); code != http.StatusNoContent || paused(t, b) {
			t.Errorf("%+v: resume without browser headers answered %d", cfg, code)
		}
	}
}

// TestUnknownHostRefused: a request naming another host (DNS rebinding)
// is refused, health checks aside.
func TestUnknownHostRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, monitor.Config{Hosts: []string{"qfpurge.example.com"}})
	port := b.mon.Addr()[strings.LastIndex(b.mon.Addr(), ":"):]
	for _, tc := range []struct {
		host, path string
		want       int
	}{
		{"evil.example" + port, "/monitoring/api/queues", http.StatusMisdirectedRequest},
		{"evil.example", "/metrics", http.StatusMisdirectedRequest},
		{"localhost.evil.example" + port, "/monitoring/", http.StatusMisdirectedRequest},
		{"evil.example" + port, "/healthz", 200},
		{"localhost" + port, "/monitoring/api/queues", 200},
		{"LOCALHOST.", "/monitoring/api/queues", 200},
		{"127.0.0.1" + port, "/monitoring/api/queues", 200},
		{"[::1]" + port, "/monitoring/api/queues", 200},
		{"qfpurge.example.com", "/monitoring/api/queues", 200},
	} {
		if code := do(t, "GET", b.base+tc.path, map[string]string{"Host": tc.host}); code != tc.want {
			t.Errorf("Host %s %s: %d, want %d", tc.host, tc.path, code, tc.want)
		}
	}
	if code := do(t, "POST", b.base+"/monitoring/api/queues/"+asynqlayout.Queue+":pause", map[string]string{"Host": "evil.example" + port}); code != http.StatusMisdirectedRequest || paused(t, b) {
		t.Errorf("pause with a foreign Host: %d", code)
	}

	// A scraper with the monitor's token may use any name for /metrics.
	b = setup(t, monitor.Config{Token: "s3cret-token-0123"})
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/metrics", "Bearer s3cret-token-0123", 200},
		{"/metrics", "", http.StatusMisdirectedRequest},
		{"/metrics", "Bearer wrong", http.StatusMisdirectedRequest},
		{"/monitoring/api/queues", "Bearer s3cret-token-0123", http.StatusMisdirectedRequest},
	} {
		if code := do(t, "GET", b.base+tc.path, map[string]string{"Host": "worker-1:8080", "Authorization": tc.auth}); code != tc.want {
			t.Errorf("Host worker-1 %s with %q: %d, want %d", tc.path, tc.auth, code, tc.want)
		}
	}
}

func TestNonLoopbackNeedsCredentials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg     monitor.Config
		wantErr bool
	}{
		{monitor.Config{Addr: "0.0.0.0:8080"}, true},
		{monitor.Config{Addr: ":8080"}, true},
		{monitor.Config{Addr: "10.1.2.3:8080"}, true},
		{monitor.Config{Addr: "[::]:8080"}, true},
		{monitor.Config{Addr: "0.0.0.0:8080", User: "ops"}, true},
		{monitor.Config{Addr: "0.0.0.0:8080", Token: "token-0123456789"}, false},
		{monitor.Config{Addr: "127.0.0.1:8080", Token: "t"}, true}, // shorter than the API's minimum
		{monitor.Config{Addr: "0.0.0.0:8080", User: "ops", Password: "p"}, false},
		{monitor.Config{Addr: "127.0.0.1:8080"}, false},
		{monitor.Config{Addr: "[::1]:8080"}, false},
		{monitor.Config{Addr: "localhost:8080"}, false},
		{monitor.Config{Addr: "no-port"}, true},
		{monitor.Config{Addr: "127.0.0.1:8080", Hosts: []string{"qfpurge.example.com"}}, false},
		{monitor.Config{Addr: "127.0.0.1:8080", Hosts: []string{"https://qfpurge.example.com"}}, true},
		{monitor.Config{Addr: "127.0.0.1:8080", Hosts: []string{"qfpurge.example.com:443"}}, true},
	} {
		// New only builds handlers; nothing connects to this address.
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		defer rdb.Close()
		insp := asynq.NewInspectorFromRedisClient(rdb)
		met := monitor.NewMetrics(nil, nil, nil)
		_, err := monitor.New(rdb, insp, met, tc.cfg)
		if (err != nil) != tc.wantErr {
			t.Errorf("New(%+v) error = %v, want error %v", tc.cfg, err, tc.wantErr)
		}
		if err != nil && tc.cfg.Addr == "0.0.0.0:8080" && tc.cfg.User == "" && tc.cfg.Token == "" && !errors.Is(err, monitor.ErrNoCredentials) {
			t.Errorf("New(%+v) = %v, want ErrNoCredentials", tc.cfg, err)
		}
	}
}

func TestFormatters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, typ string
		in        string
		payload   bool
		want      string
	}{
		{"batch", tasks.TypeDeleteBatch, `{"kind":"model","model_ids":[585,586]}`, true, "model · 2 int IDs: 585, 586"},
		{"split string", tasks.TypeDeleteBatch, `{"kind":"version","model_ids":["am-x"],"parent":"t1","split":"bisect"}`, true, "version · 1 string ID: am-x · split from t1 (bisect)"},
		{"other type", "other", `raw`, true, "raw"},
		{"unreadable", tasks.TypeDelete, `{`, true, "unreadable payload (unexpected end of JSON input): {"},
		{"result deleted", tasks.TypeDeleteBatch, `{"kind":"model","deleted":[1,2],"log_id":"2443985832","attempts":2,"at":"2026-01-01T00:00:00Z"}`, false,
			"deleted 2 int IDs: 1, 2 · log_id 2443985832 · 2 attempts · at 2026-01-01T00:00:00Z"},
		{"result bisect", tasks.TypeDeleteBatch, `{"kind":"model","split_into":["a/0","a/1"],"reason":"qianfan: 500001 param invalid","at":"x"}`, false,
			"split into a/0, a/1 · reason: qianfan: 500001 param invalid · at x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := monitor.FormatResult
			if tc.payload {
				f = monitor.FormatPayload
			}
			if diff := cmp.Diff(tc.want, f(tc.typ, []byte(tc.in))); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	var ids []string
	for i := range 25 {
		ids = append(ids, string(rune('0'+i%10)))
	}
	got := monitor.FormatPayload(tasks.TypeDelete, []byte(`{"kind":"model","model_ids":["`+strings.Join(ids, `","`)+`"]}`))
	if !strings.HasSuffix(got, ", … (5 more)") {
		t.Errorf("25 IDs rendered as %q, want 20 shown and (5 more)", got)
	}
}
