package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

const (
	tokenCI    = "ci-token-0123456789abcdef"
	tokenOps   = "ops-token-0123456789abcdef"
	tokenPlain = "plain-token-0123456789abcdef"
)

func sumOf(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// tokensFile writes a tokens file: ci may delete models named ci-* or
// tmp-*, 10 IDs a day; ops may do everything with rules and dead letters;
// plain has no scope of any kind.
func tokensFile(t *testing.T) string {
	t.Helper()
	doc := `tokens:
  - name: ci
    token_sha256: "` + sumOf(tokenCI) + `"
    kinds: [model]
    names: ["ci-*", "tmp-*"]
    max_ids_per_day: 10
  - name: ops
    token_sha256: "` + sumOf(tokenOps) + `"
    may: [rules, deadletters]
  - name: plain
    token_sha256: "` + sumOf(tokenPlain) + `"
`
	p := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// stamped records what Deps.Attribute was given.
type stamped struct {
	mu    sync.Mutex
	calls []string
}

func (s *stamped) attribute(r *enqueue.Request, by string, names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, string(r.Kind)+" by "+by+" names "+strings.Join(names, "|"))
}

func TestTokenSources(t *testing.T) {
	t.Parallel()
	file := tokensFile(t)
	if _, _, err := LoadTokens([]string{"a:" + tokenOld}, file); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("env and file: %v, want refused", err)
	}
	reg, _, err := LoadTokens(nil, file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ci", "ops", "plain"}, reg.Names()); diff != "" {
		t.Errorf("names (-want +got)\n%s", diff)
	}
	if _, _, err := LoadTokens(nil, filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Error("a missing file accepted")
	}
	_, unnamed, err := LoadTokens([]string{tokenOld, "ci:" + tokenNew}, "")
	if err != nil || unnamed != 1 {
		t.Errorf("env: unnamed %d, err %v; want 1, nil", unnamed, err)
	}
	if err := CheckTokens([]string{"ci:" + tokenOld, "ci:" + tokenNew}, ""); err == nil || !strings.Contains(err.Error(), `token name "ci" is already used by entry #1`) {
		t.Errorf("a name twice: %v", err)
	}
}

// TestUnnamedTokensWarn: a list of bare tokens still works, named by
// position, and the start says so.
func TestUnnamedTokensWarn(t *testing.T) {
	b := setupWith(t, Config{Tokens: []string{tokenOld, "ops:" + tokenNew}}, nil)
	if !strings.Contains(b.logs.String(), "level=WARN") || !strings.Contains(b.logs.String(), "unnamed=1") {
		t.Errorf("no warning about the unnamed token:\n%s", b.logs)
	}
	if diff := cmp.Diff([]string{"token-1", "ops"}, b.api.TokenNames()); diff != "" {
		t.Errorf("names (-want +got)\n%s", diff)
	}
	if w := b.do(t, "GET", "/v1/deletions/1", tokenOld, ""); w.Code != http.StatusOK || !strings.Contains(b.logs.String(), "token=token-1") {
		t.Errorf("the unnamed token: %d", w.Code)
	}
}

func TestScopesAtEnqueue(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)}
	st := &stamped{}
	b := setupWith(t, Config{TokensFile: tokensFile(t), Now: clk.Now}, func(d *Deps) { d.Attribute = st.attribute })
	ctx := context.Background()
	quotaKey := QuotaKeyPrefix + "ci:2026-12-07"
	used := func() int64 {
		t.Helper()
		n, err := b.rdb.Get(ctx, quotaKey).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		return n
	}

	// A kind outside the token's kinds: 403, nothing enqueued or counted.
	w := b.do(t, "POST", "/v1/deletions", tokenCI, `{"model_ids":[1],"kind":"version"}`)
	if e := decode[errorBody](t, w); w.Code != http.StatusForbidden || !strings.Contains(e.Error, `token "ci" may not delete kind version (its kinds: model)`) {
		t.Fatalf("kind: %d %s", w.Code, w.Body)
	}
	if n := b.asynqKeys(t); n != 0 || used() != 0 {
		t.Fatalf("after a refused kind: %d Asynq keys, %d counted", n, used())
	}

	// 4 distinct IDs (one repeat) count 4 of 10.
	if w := b.do(t, "POST", "/v1/deletions", tokenCI, `{"model_ids":[1,2,3,4,4],"key":"k1"}`); w.Code != http.StatusAccepted {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	if used() != 4 {
		t.Fatalf("counted %d, want 4", used())
	}
	// The same key again enqueues nothing new, so it is given back.
	if w := b.do(t, "POST", "/v1/deletions", tokenCI, `{"model_ids":[1,2,3,4],"key":"k1"}`); w.Code != http.StatusAccepted {
		t.Fatalf("repeat: %d %s", w.Code, w.Body)
	}
	if used() != 4 {
		t.Fatalf("after a repeated key: counted %d, want 4", used())
	}
	// 7 more would pass 10: refused whole, with the reason.
	w = b.do(t, "POST", "/v1/deletions", tokenCI, `{"model_ids":[11,12,13,14,15,16,17]}`)
	q := decode[quotaExceeded](t, w)
	wantQ := quotaExceeded{Error: q.Error, Token: "ci", Limit: 10, Used: 4, Requested: 7, ResetsAt: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)}
	if diff := cmp.Diff(wantQ, q); w.Code != http.StatusTooManyRequests || diff != "" || !strings.Contains(q.Error, "has enqueued 4 of its 10 IDs for 2026-12-07") {
		t.Fatalf("over quota: %d (-want +got)\n%s\n%s", w.Code, diff, w.Body)
	}
	if ra := w.Header().Get("Retry-After"); ra != "3601" {
		t.Errorf("Retry-After %q, want 3601 (an hour to midnight UTC)", ra)
	}
	if used() != 4 {
		t.Fatalf("after a refusal: counted %d, want 4", used())
	}
	// More than the whole day's quota says so.
	w = b.do(t, "POST", "/v1/deletions", tokenCI, `{"model_ids":[1,2,3,4,5,6,7,8,9,10,11]}`)
	if e := decode[errorBody](t, w); w.Code != 429 || !strings.Contains(e.Error, "may enqueue 10 IDs a day; this request holds 11") {
		t.Errorf("over a day's quota: %d %s", w.Code, w.Body)
	}
	// 6 fit exactly.
	if w := b.do(t, "POST", "/v1/deletions", tokenCI, `{"model_ids":[21,22,23,24,25,26]}`); w.Code != http.StatusAccepted || used() != 10 {
		t.Fatalf("the last 6: %d %s, counted %d", w.Code, w.Body, used())
	}
	// A new UTC day has a new count, and the old one expires.
	clk.Set(clk.Now().Add(time.Hour))
	if w := b.do(t, "POST", "/v1/deletions", tokenCI, `{"model_ids":[31]}`); w.Code != http.StatusAccepted {
		t.Fatalf("next day: %d %s", w.Code, w.Body)
	}
	if n, _ := b.rdb.Get(ctx, QuotaKeyPrefix+"ci:2026-12-08").Int64(); n != 1 {
		t.Errorf("next day counted %d, want 1", n)
	}
	if ttl := b.rdb.TTL(ctx, quotaKey).Val(); ttl <= 0 || ttl > quotaTTL {
		t.Errorf("the day's count expires in %s, want within %s", ttl, quotaTTL)
	}
	// A token without a quota counts nothing; ops may delete any kind.
	if w := b.do(t, "POST", "/v1/deletions", tokenOps, `{"model_ids":[41],"kind":"version"}`); w.Code != http.StatusAccepted {
		t.Fatalf("ops: %d %s", w.Code, w.Body)
	}
	if keys := b.rdb.Keys(ctx, QuotaKeyPrefix+"ops:*").Val(); len(keys) != 0 {
		t.Errorf("quota keys for a token without a quota: %v", keys)
	}
	want := []string{"model by ci names ci-*|tmp-*", "model by ci names ci-*|tmp-*", "model by ci names ci-*|tmp-*", "model by ci names ci-*|tmp-*",
		"model by ci names ci-*|tmp-*", "model by ci names ci-*|tmp-*", "version by ops names "}
	// Refused requests (kind, quota) are attributed only when past the kind check.
	if diff := cmp.Diff(want, st.calls); diff != "" {
		t.Errorf("attributed (-want +got)\n%s", diff)
	}
	if !strings.Contains(b.logs.String(), "token=ci") || strings.Contains(b.logs.String(), tokenCI[:12]) {
		t.Error("the log lacks the token's name, or holds the token")
	}
}

// failing fails every enqueue after the first ok ones.
type failing struct {
	Enqueuer
	mu sync.Mutex
	ok int
}

func (f *failing) Enqueue(ctx context.Context, r enqueue.Request) (enqueue.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ok == 0 {
		return enqueue.Receipt{}, errors.New("redis went away")
	}
	f.ok--
	return f.Enqueuer.Enqueue(ctx, r)
}

func TestQuotaRefundedOnFailure(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	b := setupWith(t, Config{TokensFile: tokensFile(t), Now: clk.Now}, func(d *Deps) { d.Producer = &failing{Enqueuer: d.Producer} })
	if w := b.do(t, "POST", "/v1/deletions", tokenCI, `{"model_ids":[1,2,3]}`); w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500: %s", w.Code, w.Body)
	}
	if n, _ := b.rdb.Get(context.Background(), QuotaKeyPrefix+"ci:2026-12-07").Int64(); n != 0 {
		t.Errorf("counted %d after a failed enqueue, want 0", n)
	}
}

// acceptAll answers every request with one new batch of its IDs, enqueuing
// nothing.
type acceptAll struct{}

func (acceptAll) Enqueue(_ context.Context, r enqueue.Request) (enqueue.Receipt, error) {
	n := len(modelid.Dedupe(r.IDs))
	return enqueue.Receipt{Kind: r.Kind, IDs: n, Tasks: 1, Batches: []enqueue.Batch{{TaskID: "t", IDs: n}}}, nil
}

// TestQuotaUnderConcurrency: 20 requests of 3 IDs race for 10 a day;
// exactly 3 go through, whatever their order.
func TestQuotaUnderConcurrency(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	b := setupWith(t, Config{TokensFile: tokensFile(t), Now: clk.Now}, func(d *Deps) { d.Producer = acceptAll{} })
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() {
			codes[i] = b.do(t, "POST", "/v1/deletions", tokenCI, `{"model_ids":[1,2,3]}`).Code
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[http.StatusAccepted] != 3 || count[http.StatusTooManyRequests] != 17 {
		t.Errorf("statuses %v, want 3 × 202 and 17 × 429", count)
	}
	if n, _ := b.rdb.Get(context.Background(), QuotaKeyPrefix+"ci:2026-12-07").Int64(); n != 9 {
		t.Errorf("counted %d, want 9", n)
	}
}

func TestRightsOnRoutes(t *testing.T) {
	b := setupWith(t, Config{TokensFile: tokensFile(t)}, nil)
	for _, tc := range []struct {
		method, path, body string
		right              string
	}{
		{"POST", "/v1/rules/x/preview", "", "rules"},
		{"POST", "/v1/rules/x/run", `{"override_limit":true}`, "rules"},
		{"POST", "/v1/deadletters/requeue", `{"all":true}`, "deadletters"},
		{"POST", "/v1/deadletters/purge", `{"all":true}`, "deadletters"},
	} {
		for _, tok := range []string{tokenCI, tokenPlain} {
			w := b.do(t, tc.method, tc.path, tok, tc.body)
			if e := decode[errorBody](t, w); w.Code != http.StatusForbidden || !strings.Contains(e.Error, "needs may: ["+tc.right+"]") {
				t.Errorf("%s %s without the right: %d %s", tc.method, tc.path, w.Code, w.Body)
			}
		}
		// ops holds the right: past the check (no rules here: 404; dead letters: 200).
		if w := b.do(t, tc.method, tc.path, tokenOps, tc.body); w.Code == http.StatusForbidden || w.Code == http.StatusUnauthorized {
			t.Errorf("%s %s with the right: %d %s", tc.method, tc.path, w.Code, w.Body)
		}
	}
	// Reading needs no right.
	for _, path := range []string{"/v1/deletions/1", "/v1/deadletters"} {
		if w := b.do(t, "GET", path, tokenPlain, ""); w.Code != http.StatusOK {
			t.Errorf("GET %s: %d", path, w.Code)
		}
	}
}

// TestRequeueKeepsTheScope: a token limited to models cannot requeue a
// version's dead letter; the requeue is attributed to its token.
func TestRequeueKeepsTheScope(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens.yaml")
	doc := "tokens:\n  - name: models-only\n    token_sha256: " + sumOf(tokenCI) + "\n    kinds: [model]\n    names: [\"ci-*\"]\n    may: [deadletters]\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	st := &stamped{}
	b := setupWith(t, Config{TokensFile: file}, func(d *Deps) { d.Attribute = st.attribute })
	ctx := context.Background()
	at := time.Now().Add(-time.Minute)
	if _, err := b.ledger.Write(ctx, []ledger.Outcome{
		{Kind: modelid.KindModel, ID: modelid.IntID(7), State: ledger.StateDead, Message: "param invalid", At: at},
		{Kind: modelid.KindVersion, ID: modelid.IntID(8), State: ledger.StateDead, Message: "param invalid", At: at},
	}); err != nil {
		t.Fatal(err)
	}
	w := b.do(t, "POST", "/v1/deadletters/requeue", tokenCI, `{"all":true}`)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "may not delete kind version") {
		t.Fatalf("requeue of a version: %d %s", w.Code, w.Body)
	}
	if n, _ := deadletter.NewStore(b.rdb).Count(ctx); n != 2 {
		t.Fatalf("%d dead letters left, want both", n)
	}
	page := decode[deadLetterPage](t, b.do(t, "GET", "/v1/deadletters", tokenCI, ""))
	w = b.do(t, "POST", "/v1/deadletters/requeue", tokenCI, `{"entry_ids":["`+page.DeadLetters[0].EntryID+`"]}`)
	if w.Code != http.StatusOK {
		t.Fatalf("requeue of the model: %d %s", w.Code, w.Body)
	}
	if diff := cmp.Diff([]string{"model by models-only names ci-*"}, st.calls); diff != "" {
		t.Errorf("attributed (-want +got)\n%s", diff)
	}
}

func TestProcessAtHorizon(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	b := setupWith(t, Config{Tokens: []string{tokenOld}, Now: func() time.Time { return now }}, nil)
	for _, tc := range []struct {
		body   string
		status int
		msg    string
	}{
		{`{"model_ids":[1],"process_at":"2026-12-07T11:58:00Z"}`, 400, "process_at: 2026-12-07T11:58:00Z is in the past: 2m0s before now"},
		{`{"model_ids":[1],"process_at":"2027-12-08T12:00:00Z"}`, 400, "process_at: 2027-12-08T12:00:00Z is too far ahead"},
		{`{"model_ids":[1],"process_in":"-1s"}`, 400, "process_in: -1s is negative"},
		{`{"model_ids":[1],"process_in":"8761h"}`, 400, "process_in: 8761h0m0s is too far ahead"},
		{`{"model_ids":[2],"process_at":"2026-12-07T11:59:30Z"}`, 202, ""},
		{`{"model_ids":[3],"process_at":"2027-12-07T12:00:00Z"}`, 202, ""},
	} {
		w := b.do(t, "POST", "/v1/deletions", tokenOld, tc.body)
		if w.Code != tc.status || (tc.msg != "" && !strings.Contains(decode[errorBody](t, w).Error, tc.msg)) {
			t.Errorf("%s: %d %s, want %d %q", tc.body, w.Code, w.Body, tc.status, tc.msg)
		}
	}
	// Half a minute ago means now: nothing is scheduled for it.
	rc := decode[enqueue.Receipt](t, b.do(t, "POST", "/v1/deletions", tokenOld, `{"model_ids":[4,5],"process_at":"2026-12-07T11:59:30Z"}`))
	if len(rc.Batches) != 1 || !rc.Batches[0].At.IsZero() {
		t.Errorf("a time just past: %+v, want a batch for now", rc.Batches)
	}
}
