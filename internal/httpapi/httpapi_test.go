package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "cmp"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

func TestMain(m *testing.M) {
	// bce-sdk-go's logger starts its writer goroutine in an init func.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"))
}

const (
	tokenOld = "old-token-0123456789abcdef"
	tokenNew = "new-token-fedcba9876543210"
)

type testBundle struct {
	api    *API
	rdb    *redis.Client
	ledger *ledger.Ledger
	insp   *asynq.Inspector
	logs   *bytes.Buffer
}

func setup(t *testing.T) testBundle {
	t.Helper()
	return setupWith(t, Config{Tokens: []string{tokenOld, tokenNew}}, nil)
}

// setupWith builds the API on a new Redis with cfg (MaxBodyBytes and
// Logger filled in) and the Deps as tweak, when set, leaves them.
func setupWith(t *testing.T, cfg Config, tweak func(*Deps)) testBundle {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ledger := ledger.New(rdb, ledger.Config{})
	prod, err := enqueue.New(rdb, enqueue.Config{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	logs := &bytes.Buffer{}
	cfg.MaxBodyBytes = gocmp.Or(cfg.MaxBodyBytes, 512)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	d := Deps{Redis: rdb, Ledger: ledger, DeadLetters: deadletter.NewStore(rdb), Producer: prod, Archive: insp}
	if tweak != nil {
		tweak(&d)
	}
	api, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	return testBundle{api: api, rdb: rdb, ledger: ledger, insp: insp, logs: logs}
}

func (b testBundle) do(t *testing.T, method, target, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	b.api.ServeHTTP(w, r)
	return w
}

// asynqKeys counts Asynq's keys: zero means nothing was ever enqueued.
func (b testBundle) asynqKeys(t *testing.T) int {
	t.Helper()
	keys, err := b.rdb.Keys(context.Background(), "asynq:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", w.Body.String(), err)
	}
	return v
}

func TestNewRefusesWithoutTokens(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	deps := Deps{Redis: rdb, Ledger: ledger.New(rdb, ledger.Config{}), DeadLetters: deadletter.NewStore(rdb), Producer: nopEnqueuer{}}
	if _, err := New(Config{}, deps); !errors.Is(err, ErrNoTokens) {
		t.Fatalf("no tokens: got %v, want ErrNoTokens", err)
	}
	if _, err := New(Config{Tokens: ParseTokens(" , ,")}, deps); !errors.Is(err, ErrNoTokens) {
		t.Fatalf("blank tokens: got %v, want ErrNoTokens", err)
	}
	_, err := New(Config{Tokens: []string{"short-secret"}}, deps)
	if err == nil || strings.Contains(err.Error(), "short-secret") {
		t.Fatalf("short token: got %v, want an error that does not echo the token", err)
	}
}

type nopEnqueuer struct{}

func (nopEnqueuer) Enqueue(context.Context, enqueue.Request) (enqueue.Receipt, error) {
	return enqueue.Receipt{}, nil
}

func TestParseTokens(t *testing.T) {
	t.Parallel()
	got := ParseTokens(" a , b,,c ")
	if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
}

func TestAuthentication(t *testing.T) {
	b := setup(t)
	body := `{"model_ids":[1,2]}`
	for _, tc := range []struct {
		name, header string
		wantError    bool // WWW-Authenticate names invalid_token
	}{
		{name: "no header"},
		{name: "basic scheme", header: "Basic dXNlcjpwYXNz"},
		{name: "empty bearer", header: "Bearer "},
		{name: "wrong token", header: "Bearer " + tokenOld + "x", wantError: true},
		{name: "prefix of a token", header: "Bearer " + tokenOld[:20], wantError: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/deletions", strings.NewReader(body))
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			b.api.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", w.Code, w.Body)
			}
			h := w.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(h, "Bearer") || strings.Contains(h, "invalid_token") != tc.wantError {
				t.Errorf("WWW-Authenticate %q", h)
			}
			if e := decode[errorBody](t, w); e.Error == "" {
				t.Errorf("no JSON error: %s", w.Body)
			}
		})
	}
	for _, path := range []string{"/v1/deletions/1", "/v1/deadletters"} {
		if w := b.do(t, "GET", path, "", ""); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without token: %d", path, w.Code)
		}
	}
	if n := b.asynqKeys(t); n != 0 {
		t.Fatalf("%d Asynq keys after refused requests, want 0", n)
	}
	// Both rotation tokens work.
	for _, tok := range []string{tokenOld, tokenNew} {
		if w := b.do(t, "GET", "/v1/deletions/1", tok, ""); w.Code != http.StatusOK {
			t.Errorf("valid token: %d %s", w.Code, w.Body)
		}
	}
	if strings.Contains(b.logs.String(), tokenOld[:12]) || strings.Contains(b.logs.String(), tokenNew[:12]) {
		t.Fatal("a token reached the log")
	}
}

func TestPostDeletionsRejects(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		name, body  string
		contentType string
		status      int
		wantInvalid []modelid.InvalidID
	}{
		{name: "bad JSON", body: `{"model_ids":[1,`, status: 400},
		{name: "not an object", body: `[1,2]`, status: 400},
		{name: "unknown field", body: `{"model_ids":[1],"kinds":"model"}`, status: 400},
		{name: "trailing data", body: `{"model_ids":[1]} {}`, status: 400},
		{name: "unknown kind", body: `{"model_ids":[1],"kind":"dataset"}`, status: 400},
		{name: "no IDs", body: `{"model_ids":[]}`, status: 400},
		{name: "both delays", body: `{"model_ids":[1],"process_in":"1m","process_at":"2030-01-01T00:00:00Z"}`, status: 400},
		{name: "bad process_in", body: `{"model_ids":[1],"process_in":"-1m"}`, status: 400},
		{name: "bad process_at", body: `{"model_ids":[1],"process_at":"tomorrow"}`, status: 400},
		{name: "key with space", body: `{"model_ids":[1],"key":"a b"}`, status: 400},
		{
			name: "invalid IDs", body: `{"model_ids":[5, -3, 1.5, "", "am ok", "am-fine", true, "\ufeff12", "585", "s-1", "amv-1"]}`, status: 400,
			wantInvalid: []modelid.InvalidID{
				{Index: 1, Text: "-3", Reason: "int IDs are positive"},
				{Index: 2, Text: "1.5", Reason: "not a whole number"},
				{Index: 3, Text: `""`, Reason: "empty string ID"},
				{Index: 4, Text: `"am ok"`, Reason: "holds a space (U+0020)"},
				{Index: 6, Text: "true", Reason: "not an ID: a boolean (want a whole number or a string)"},
				{Index: 7, Text: `"\ufeff12"`, Reason: "holds a byte-order mark (U+FEFF)"},
				{Index: 8, Text: `"585"`, Reason: "a quoted number is not an ID: write 585 without quotes for the int ID (Qianfan's string IDs start with am- or amv-)"},
				{Index: 9, Text: `"s-1"`, Reason: "not an ID: want a whole number (585) or a Qianfan string ID (am-…, amv-…)"},
				{Index: 10, Text: `"amv-1"`, Reason: "ID of the other kind: an amv- ID names a model version, not a model: send it with kind version"},
			},
		},
		{name: "duplicate key", body: `{"model_ids":[1],"model_ids":[2]}`, status: 400},
		{name: "key in another case", body: `{"Model_IDs":[1]}`, status: 400},
		{name: "another media type", body: `{"model_ids":[1]}`, status: 415, contentType: "application/jsonx"},
		{name: "text/plain", body: `{"model_ids":[1]}`, status: 415, contentType: "text/plain"},
		{name: "oversize", body: `{"model_ids":[` + strings.Repeat("12345,", 200) + `1]}`, status: 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/deletions", strings.NewReader(tc.body))
			r.Header.Set("Authorization", "Bearer "+tokenNew)
			r.Header.Set("Content-Type", gocmp.Or(tc.contentType, "application/json"))
			w := httptest.NewRecorder()
			b.api.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			e := decode[struct {
				Error   string              `json:"error"`
				Invalid []modelid.InvalidID `json:"invalid"`
			}](t, w)
			if e.Error == "" {
				t.Errorf("no error message: %s", w.Body)
			}
			if tc.wantInvalid == nil && strings.Contains(w.Body.String(), `"invalid"`) {
				t.Errorf(`an "invalid" member without invalid IDs: %s`, w.Body)
			}
			if diff := cmp.Diff(tc.wantInvalid, e.Invalid); diff != "" {
				t.Errorf("invalid (-want +got)\n%s", diff)
			}
		})
	}
	if n := b.asynqKeys(t); n != 0 {
		t.Fatalf("%d Asynq keys after rejected requests, want 0", n)
	}
}

func TestPostDeletionsAndState(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	// Batch size 2: two int IDs form a ready batch, one string ID waits in a group.
	w := b.do(t, "POST", "/v1/deletions", tokenOld, `{"model_ids":[585, 586, "am-x", 585],"kind":"model","key":"job-1"}`)
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	rc := decode[enqueue.Receipt](t, w)
	if rc.IDs != 3 || rc.IntIDs != 2 || rc.StringIDs != 1 || rc.Duplicates != 1 || len(rc.Batches) != 2 {
		t.Fatalf("receipt %+v", rc)
	}
	if rc.Batches[0].TaskID != "job-1/int/0" || rc.Batches[1].Group == "" {
		t.Fatalf("batches %+v", rc.Batches)
	}
	q, err := b.insp.GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if q.Pending != 1 || q.Aggregating != 1 {
		t.Fatalf("queue: pending %d aggregating %d, want 1 and 1", q.Pending, q.Aggregating)
	}
	// The same request under the same key adds nothing, in any order.
	w = b.do(t, "POST", "/v1/deletions", tokenOld, `{"model_ids":["am-x", 586, 585],"key":"job-1"}`)
	if rc := decode[enqueue.Receipt](t, w); w.Code != 202 || !rc.Batches[0].Existing {
		t.Fatalf("repeat: %d %s", w.Code, w.Body)
	}
	// The key with other IDs is another request: refused, naming the key.
	w = b.do(t, "POST", "/v1/deletions", tokenOld, `{"model_ids":[585, 586, 587],"key":"job-1"}`)
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "job-1") {
		t.Fatalf("key reused for other IDs: %d %s; want 409 naming the key", w.Code, w.Body)
	}
	if q, err := b.insp.GetQueueInfo(asynqlayout.Queue); err != nil || q.Pending != 1 || q.Aggregating != 1 {
		t.Fatalf("queue after the conflict: %+v %v; want nothing added", q, err)
	}

	state := func(path string) deletionState {
		t.Helper()
		w := b.do(t, "GET", path, tokenOld, "")
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		return decode[deletionState](t, w)
	}
	for _, path := range []string{"/v1/deletions/585", "/v1/deletions/am-x?kind=model", "/v1/deletions/586?id_type=int"} {
		if st := state(path); st.State != string(ledger.StatePending) || st.At == nil {
			t.Errorf("GET %s: %+v, want pending with a time", path, st)
		}
	}
	for _, path := range []string{"/v1/deletions/585?kind=version", "/v1/deletions/999"} {
		if st := state(path); st.State != StateUnknown || st.At != nil {
			t.Errorf("GET %s: %+v, want unknown", path, st)
		}
	}
	for _, path := range []string{"/v1/deletions/am-x?id_type=int", "/v1/deletions/585?id_type=string", "/v1/deletions/-1", "/v1/deletions/1?kind=x",
		"/v1/deletions/1?id_type=x", "/v1/deletions/%EF%BB%BF12", "/v1/deletions/s-1", "/v1/deletions/am-x?kind=version"} {
		if w := b.do(t, "GET", path, tokenOld, ""); w.Code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", path, w.Code)
		}
	}

	// A worker records outcomes; pending is replaced.
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	if _, err := b.ledger.Write(ctx, []ledger.Outcome{
		{Kind: modelid.KindModel, ID: modelid.IntID(585), State: ledger.StateDeleted, LogID: "L-1", TaskID: "job-1/0", API: "v2", Run: "run-1", At: at},
		{Kind: modelid.KindModel, ID: modelid.StringID("am-x"), State: ledger.StateDead, Code: 500001, Message: "param invalid", LogID: "L-2", At: at},
	}); err != nil {
		t.Fatal(err)
	}
	got := state("/v1/deletions/585")
	want := deletionState{Kind: modelid.KindModel, ID: modelid.IntID(585), IDType: "int", State: string(ledger.StateDeleted), LogID: "L-1", TaskID: "job-1/0", API: "v2", Run: "run-1", At: got.At}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(modelid.ID{})); diff != "" || got.At == nil || !got.At.Equal(at) {
		t.Errorf("deleted (-want +got)\n%s at %v", diff, got.At)
	}
	if st := state("/v1/deletions/am-x"); st.State != string(ledger.StateDead) || st.Code != 500001 || st.Message != "param invalid" {
		t.Errorf("dead: %+v", st)
	}
	// Enqueuing again: a deleted ID stays deleted, an earlier dead one is pending again.
	w = b.do(t, "POST", "/v1/deletions", tokenOld, `{"model_ids":[585, "am-x"],"process_in":"1h"}`)
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if st := state("/v1/deletions/585"); st.State != string(ledger.StateDeleted) {
		t.Errorf("deleted ID after a new request: %+v", st)
	}
	if st := state("/v1/deletions/am-x"); st.State != string(ledger.StatePending) {
		t.Errorf("dead ID enqueued again: %+v, want pending", st)
	}
	ttl, _ := b.ledger.TTL(ctx, modelid.KindModel, modelid.StringID("am-x"))
	if ttl < 30*24*time.Hour {
		t.Errorf("pending marker TTL %s, want at least the ledger TTL", ttl)
	}
}

func TestDeadLetters(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	// An archived Asynq task that dead-lettered ID 7.
	task, err := tasks.NewBatchTask(tasks.Payload{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(7)}}, tasks.Options{}, asynq.TaskID("t-7"))
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(b.rdb)
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	if err := b.insp.ArchiveTask(asynqlayout.Queue, "t-7"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-time.Minute)
	outs := []ledger.Outcome{
		{Kind: modelid.KindModel, ID: modelid.IntID(7), State: ledger.StateDead, Code: 500001, Message: "param invalid", TaskID: "t-7", At: now},
		{Kind: modelid.KindVersion, ID: modelid.StringID("amv-8"), State: ledger.StateDead, Code: 500001, Message: "param invalid", At: now},
		{Kind: "", ID: modelid.StringID("unreadable"), State: ledger.StateDead, Message: "decode payload", At: now},
	}
	if _, err := b.ledger.Write(ctx, outs); err != nil {
		t.Fatal(err)
	}

	w := b.do(t, "GET", "/v1/deadletters?limit=2", tokenOld, "")
	page := decode[deadLetterPage](t, w)
	if w.Code != 200 || len(page.DeadLetters) != 2 || page.Total != 3 || page.Next != page.DeadLetters[1].EntryID {
		t.Fatalf("page 1: %d %s", w.Code, w.Body)
	}
	w = b.do(t, "GET", "/v1/deadletters?limit=2&after="+page.Next, tokenOld, "")
	page2 := decode[deadLetterPage](t, w)
	if len(page2.DeadLetters) != 1 || page2.Next != "" || page2.DeadLetters[0].Kind != "" {
		t.Fatalf("page 2: %s", w.Body)
	}
	for _, q := range []string{"limit=0", "limit=5000", "after=x"} {
		if w := b.do(t, "GET", "/v1/deadletters?"+q, tokenOld, ""); w.Code != 400 {
			t.Errorf("%s: %d, want 400", q, w.Code)
		}
	}
	for _, body := range []string{`{}`, `{"all":true,"entry_ids":["1-0"]}`, `{"entry_ids":["nope"]}`} {
		if w := b.do(t, "POST", "/v1/deadletters/requeue", tokenOld, body); w.Code != 400 {
			t.Errorf("requeue %s: %d, want 400", body, w.Code)
		}
	}

	// Requeue the first entry and one that does not exist.
	first := page.DeadLetters[0]
	w = b.do(t, "POST", "/v1/deadletters/requeue", tokenOld, `{"entry_ids":["`+first.EntryID+`","1-0"]}`)
	if w.Code != 200 {
		t.Fatalf("requeue: %d %s", w.Code, w.Body)
	}
	res := decode[requeueResponse](t, w)
	if res.Requeued != 1 || res.ArchivedDeleted != 1 || len(res.Receipts) != 1 || res.Receipts[0].IDs != 1 {
		t.Fatalf("requeue result %s", w.Body)
	}
	if diff := cmp.Diff([]string{"1-0"}, res.Missing); diff != "" {
		t.Errorf("missing (-want +got)\n%s", diff)
	}
	if _, err := b.insp.GetTaskInfo(asynqlayout.Queue, "t-7"); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("archived task after requeue: %v, want ErrTaskNotFound", err)
	}
	if st := decode[deletionState](t, b.do(t, "GET", "/v1/deletions/7", tokenOld, "")); st.State != string(ledger.StatePending) {
		t.Errorf("requeued ID: %+v, want pending", st)
	}
	if n, _ := deadletter.NewStore(b.rdb).Count(ctx); n != 2 {
		t.Fatalf("%d dead letters left, want 2", n)
	}
	// All: the unreadable one is skipped and stays.
	w = b.do(t, "POST", "/v1/deadletters/requeue", tokenOld, `{"all":true}`)
	res = decode[requeueResponse](t, w)
	if w.Code != 200 || res.Requeued != 1 || len(res.Skipped) != 1 || res.Receipts[0].Kind != modelid.KindVersion {
		t.Fatalf("requeue all: %d %s", w.Code, w.Body)
	}
	if n, _ := deadletter.NewStore(b.rdb).Count(ctx); n != 1 {
		t.Fatalf("%d dead letters left, want the unreadable one", n)
	}
	q, err := b.insp.GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if q.Aggregating != 2 {
		t.Errorf("%d tasks aggregating after requeue, want 2", q.Aggregating)
	}
}

func TestMethodsAndRoutes(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/v1/deletions", 405, "POST"},
		{"PUT", "/v1/deletions/585", 405, "GET, HEAD, DELETE"},
		{"PUT", "/v1/deadletters/requeue", 405, "POST"},
		{"GET", "/v1/nothing", 404, ""},
		{"POST", "/", 404, ""},
	} {
		w := b.do(t, tc.method, tc.path, tokenOld, "")
		if w.Code != tc.status || w.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", tc.method, tc.path, w.Code, w.Header().Get("Allow"), tc.status, tc.allow)
		}
		if e := decode[errorBody](t, w); e.Error == "" || strings.Contains(w.Body.String(), `"invalid"`) {
			t.Errorf("%s %s: body %s", tc.method, tc.path, w.Body)
		}
	}
}

// TestCrossOriginRefused: a browser's cross-site POST is refused even with
// a token; a same-origin or non-browser one goes through.
func TestCrossOriginRefused(t *testing.T) {
	b := setup(t)
	post := func(h map[string]string) int {
		r := httptest.NewRequest("POST", "/v1/deletions", strings.NewReader(`{"model_ids":[1]}`))
		r.Header.Set("Authorization", "Bearer "+tokenOld)
		r.Header.Set("Content-Type", "application/json")
		for k, v := range h {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		b.api.ServeHTTP(w, r)
		return w.Code
	}
	if c := post(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); c != http.StatusForbidden {
		t.Errorf("cross-site: %d, want 403", c)
	}
	if c := post(map[string]string{"Origin": "https://evil.example"}); c != http.StatusForbidden {
		t.Errorf("foreign Origin: %d, want 403", c)
	}
	if n := b.asynqKeys(t); n != 0 {
		t.Fatalf("%d Asynq keys after refused requests", n)
	}
	if c := post(nil); c != http.StatusAccepted {
		t.Errorf("no browser headers: %d, want 202", c)
	}
	if c := post(map[string]string{"Sec-Fetch-Site": "same-origin"}); c != http.StatusAccepted {
		t.Errorf("same-origin: %d, want 202", c)
	}
}

// TestRepeatedKeyKeepsTheFirstTime: a repeat answers the first request's
// process_at, not one computed from the repeat.
func TestRepeatedKeyKeepsTheFirstTime(t *testing.T) {
	b := setup(t)
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	body := func(at time.Time) string {
		return `{"model_ids":[1,2],"process_at":"` + at.Format(time.RFC3339) + `","key":"k1"}`
	}
	if w := b.do(t, "POST", "/v1/deletions", tokenOld, body(at)); w.Code != 202 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	w := b.do(t, "POST", "/v1/deletions", tokenOld, body(at.Add(time.Hour)))
	again := decode[enqueue.Receipt](t, w)
	if w.Code != 202 || len(again.Batches) != 1 || !again.Batches[0].Existing {
		t.Fatalf("repeat: %d %s", w.Code, w.Body)
	}
	if got := again.Batches[0]; !got.At.Equal(at) || got.State != "scheduled" {
		t.Errorf("repeat's batch %+v, want scheduled at the first request's %s", got, at)
	}
}

// TestOpenAPICoversRoutes checks that docs/openapi.yaml documents every
// route the API registers, and nothing else.
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	api, err := New(Config{Tokens: []string{tokenOld}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Deps{Redis: rdb, Ledger: ledger.New(rdb, ledger.Config{}), DeadLetters: deadletter.NewStore(rdb), Producer: nopEnqueuer{}})
	if err != nil {
		t.Fatal(err)
	}
	sortStrings := cmp.Transformer("sort", func(in []string) []string {
		out := append([]string(nil), in...)
		slices.Sort(out)
		return out
	})
	if diff := cmp.Diff(api.Routes(), documented, sortStrings); diff != "" {
		t.Fatalf("routes (-registered +documented)\n%s", diff)
	}
}
