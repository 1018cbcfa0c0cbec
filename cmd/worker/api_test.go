package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/fakeqianfan"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

const (
	apiTestToken  = "api-test-token-0123456789"
	apiTestToken2 = "api-test-token-rotated-987"
	apiPoisonID   = 404404
)

// apiWorker is a worker started by run with the HTTP API on a free port.
type apiWorker struct {
	base string
	rdb  *redis.Client
	srv  *redistest.Server
	fake *fakeqianfan.Server
}

// addrWriter collects the worker's JSON logs and reports the API address.
type addrWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	addr chan string
	line []byte
}

func (w *addrWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(w.line[:i], &rec) == nil && rec.Msg == "http api listening" {
			select {
			case w.addr <- rec.Addr:
			default:
			}
		}
		w.line = w.line[i+1:]
	}
	return len(p), nil
}

func (w *addrWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func startAPIWorker(t *testing.T) *apiWorker {
	t.Helper()
	w := &apiWorker{srv: redistest.Start(t)}
	w.rdb = w.srv.Client(t)
	w.fake = fakeqianfan.New(fakeqianfan.Config{Invalid: fakeqianfan.InvalidIDs(apiPoisonID)})
	fake := httptest.NewServer(w.fake)
	t.Cleanup(fake.Close)
	env := map[string]string{
		"REDIS_URL":          w.srv.URL(),
		"QIANFAN_ACCESS_KEY": fakeqianfan.DefaultAccessKey,
		"QIANFAN_SECRET_KEY": fakeqianfan.DefaultSecretKey,
		"QIANFAN_BASE_URL":   fake.URL,
		"QFPURGE_API_TOKENS": apiTestToken + ", " + apiTestToken2,
	}
	// Batch size 2 and even counts per ID type: every batch is ready at
	// once, so nothing waits for Asynq's aggregation tick.
	args := []string{"--api-addr", "127.0.0.1:0", "--api-max-body", "256", "--batch-size", "2",
		"--batch-wait", "1s", "--batch-max-wait", "1s", "--qps", "0", "--shutdown-timeout", "5s",
		"--log-format", "json", "--log-level", "info"}
	logs := &addrWriter{addr: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("worker did not stop within 30s of cancel")
		}
		if t.Failed() {
			t.Logf("worker logs:\n%s", logs.String())
		}
		for _, tok := range []string{apiTestToken, apiTestToken2} {
			if strings.Contains(logs.String(), tok) {
				t.Errorf("a token reached the worker's log")
			}
		}
	})
	select {
	case addr := <-logs.addr:
		w.base = "http://" + addr
	case err := <-done:
		t.Fatalf("worker stopped before the API listened: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("the API did not start within 20s:\n%s", logs.String())
	}
	return w
}

func (w *apiWorker) call(t *testing.T, method, path, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, w.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
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

// waitOutcome polls GET /v1/deletions/{id} until the ID has an outcome.
func (w *apiWorker) waitOutcome(t *testing.T, id string) apiState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, body := w.call(t, "GET", "/v1/deletions/"+id, apiTestToken2, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", id, code, body)
		}
		var st apiState
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		if st.State != "pending" && st.State != "unknown" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("ID %s still %s after 30s", id, st.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *apiWorker) queueTouched(t *testing.T) bool {
	t.Helper()
	qs, err := asynq.NewInspectorFromRedisClient(w.rdb).Queues()
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(qs, asynqlayout.Queue)
}

func TestAPIEndToEnd(t *testing.T) {
	w := startAPIWorker(t)
	ctx := context.Background()
	good := `{"model_ids":[101,102,` + "404404" + `,103,"am-a","am-b"],"kind":"model"}`

	// Refused requests enqueue nothing.
	for _, tc := range []struct {
		name, token, body string
		status            int
	}{
		{"no token", "", good, 401},
		{"wrong token", apiTestToken + "-not", good, 401},
		{"bad JSON", apiTestToken, `{"model_ids":[101,`, 400},
		{"invalid ID", apiTestToken, `{"model_ids":[101,-5]}`, 400},
		{"unknown kind", apiTestToken, `{"model_ids":[101],"kind":"dataset"}`, 400},
		{"oversize", apiTestToken, `{"model_ids":[` + strings.Repeat("1001,", 60) + `1]}`, 413},
	} {
		code, hdr, body := w.call(t, "POST", "/v1/deletions", tc.token, tc.body)
		if code != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, code, tc.status, body)
		}
		if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, hdr.Get("WWW-Authenticate"))
		}
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s: no JSON error: %s", tc.name, body)
		}
	}
	if w.queueTouched(t) || len(w.fake.Stats().Calls) != 0 {
		t.Fatalf("refused requests enqueued something: fake stats %+v", w.fake.Stats())
	}

	code, _, body := w.call(t, "POST", "/v1/deletions", apiTestToken, good)
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
		st := w.waitOutcome(t, id)
		if st.State != string(ledger.StateDeleted) || st.LogID == "" || st.At == "" {
			t.Errorf("ID %s: %+v, want deleted with a log_id", id, st)
		}
	}
	st := w.waitOutcome(t, "404404")
	if st.State != string(ledger.StateDead) || st.Code != 500001 {
		t.Errorf("poison ID: %+v, want dead with code 500001", st)
	}
	for _, id := range []any{int64(101), int64(102), int64(103), "am-a", "am-b"} {
		if n := w.fake.DeleteCount(fakeqianfan.KindModel, id); n != 1 {
			t.Errorf("fake deleted %v %d times, want 1", id, n)
		}
	}

	// One event per outcome, readable with redis-cli XRANGE.
	evs, err := w.rdb.XRange(ctx, ledger.EventStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for _, e := range evs {
		outcomes[e.Values["id"].(string)] = e.Values["outcome"].(string)
	}
	wantOutcomes := map[string]string{"101": "deleted", "102": "deleted", "103": "deleted", "am-a": "deleted", "am-b": "deleted", "404404": "dead"}
	if len(evs) != 6 || !maps.Equal(outcomes, wantOutcomes) {
		t.Fatalf("events: %d %v, want one per outcome %v", len(evs), outcomes, wantOutcomes)
	}
	if cli, err := exec.LookPath("redis-cli"); err == nil {
		host, port, _ := strings.Cut(w.srv.Addr, ":")
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
	code, _, body = w.call(t, "GET", "/v1/deadletters", apiTestToken, "")
	var page struct {
		DeadLetters []struct {
			EntryID string `json:"entry_id"`
			Code    int    `json:"code"`
		} `json:"dead_letters"`
	}
	if err := json.Unmarshal(body, &page); code != 200 || err != nil || len(page.DeadLetters) != 1 || page.DeadLetters[0].Code != 500001 {
		t.Fatalf("dead letters: %d %s", code, body)
	}
	code, _, body = w.call(t, "POST", "/v1/deadletters/requeue", apiTestToken, `{"entry_ids":["`+page.DeadLetters[0].EntryID+`"]}`)
	if code != 200 || !strings.Contains(string(body), `"requeued":1`) || !strings.Contains(string(body), `"archived_deleted":1`) {
		t.Fatalf("requeue: %d %s", code, body)
	}
	// Single-ID jobs wait in a group for the aggregation tick; then it is dead again.
	if st := w.waitOutcome(t, "404404"); st.State != string(ledger.StateDead) {
		t.Errorf("requeued poison ID: %+v, want dead again", st)
	}
	if n := w.rdb.XLen(ctx, ledger.EventStream).Val(); n != 7 {
		t.Errorf("%d events after the requeued ID died again, want 7", n)
	}
}
