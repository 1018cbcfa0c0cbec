package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// memSource is an account of two old tmp models, one of them used.
type memSource struct{}

func (memSource) Snapshot(context.Context) (*inventory.Snapshot, error) {
	old := time.Now().Add(-100 * 24 * time.Hour)
	return &inventory.Snapshot{Taken: time.Now(), Models: []inventory.Model{
		{ID: "am-a", Name: "tmp-a", Created: old},
		{ID: "am-b", Name: "tmp-b", Created: old},
	}, Services: []inventory.Service{{ID: "svco-1", Name: "svc", Status: "Serving", Models: []string{"am-b"}}}}, nil
}

func (memSource) Versions(context.Context, string) ([]inventory.Version, error) { return nil, nil }

type submitted struct {
	mu   sync.Mutex
	opts []policy.Options
}

func (s *submitted) Submit(_ context.Context, r policy.Rule, o policy.Options) (policy.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts = append(s.opts, o)
	return policy.Record{ID: "run-" + string(o.Mode), Rule: r.Name, Mode: o.Mode, Status: policy.StatusQueued}, nil
}

func TestRuleRoutes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	l := ledger.New(rdb, ledger.Config{})
	rule := policy.Rule{Name: "tmp", Kind: modelid.KindModel, Delete: []policy.Selector{{Names: []string{"tmp-*"}}},
		Limit: policy.Limit{Share: 1}}
	runner := policy.NewRunner(rdb, memSource{}, nopEnqueuer{}, policy.Config{Logger: slog.New(slog.DiscardHandler)})
	sub := &submitted{}
	api, err := New(Config{Tokens: []string{tokenOld}, Logger: slog.New(slog.DiscardHandler)}, Deps{
		Redis: rdb, Ledger: l, DeadLetters: deadletter.NewStore(rdb), Producer: nopEnqueuer{},
		Rules: &Rules{Lookup: func(name string) (policy.Rule, bool) { return rule, name == "tmp" }, Submitter: sub},
		Runs:  runner.Store(),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := testBundle{api: api, rdb: rdb, logs: &bytes.Buffer{}}

	if w := b.do(t, "POST", "/v1/rules/nope/preview", tokenOld, ""); w.Code != http.StatusNotFound {
		t.Errorf("unknown rule: %d %s", w.Code, w.Body)
	}
	w := b.do(t, "POST", "/v1/rules/tmp/preview", tokenOld, "")
	if w.Code != http.StatusAccepted || w.Header().Get("Location") != "/v1/runs/run-preview" {
		t.Errorf("preview: %d %s (Location %q)", w.Code, w.Body, w.Header().Get("Location"))
	}
	if w := b.do(t, "POST", "/v1/rules/tmp/run", tokenOld, `{"override_limit": true}`); w.Code != http.StatusAccepted {
		t.Errorf("run: %d %s", w.Code, w.Body)
	}
	if w := b.do(t, "POST", "/v1/rules/tmp/run", tokenOld, `{"overide_limit": true}`); w.Code != http.StatusBadRequest {
		t.Errorf("misspelt field: %d %s", w.Code, w.Body)
	}
	if w := b.do(t, "POST", "/v1/rules/tmp/run", "", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("no token: %d", w.Code)
	}
	if len(sub.opts) != 2 || sub.opts[0].Mode != policy.ModePreview || sub.opts[1].Mode != policy.ModeRun ||
		!sub.opts[1].OverrideLimit || sub.opts[0].OverrideLimit || sub.opts[1].Trigger != "api" {
		t.Errorf("submitted %+v", sub.opts)
	}

	// Records as a worker leaves them.
	ctx := context.Background()
	prev, _, err := runner.Execute(ctx, rule, policy.Options{Mode: policy.ModePreview, Trigger: "api"})
	if err != nil {
		t.Fatal(err)
	}
	w = b.do(t, "GET", "/v1/runs?limit=5", tokenOld, "")
	list := decode[struct{ Runs []policy.Record }](t, w)
	if w.Code != http.StatusOK || len(list.Runs) != 1 || list.Runs[0].ID != prev.ID || list.Runs[0].Status != policy.StatusPreviewed {
		t.Errorf("list: %d %s", w.Code, w.Body)
	}
	w = b.do(t, "GET", "/v1/runs/"+prev.ID+"?limit=1&offset=1", tokenOld, "")
	d := decode[runDetail](t, w)
	if w.Code != http.StatusOK || d.Total != 2 || len(d.Items) != 1 || d.Items[0].ID != "am-b" || d.Items[0].Action != policy.ActionProtect ||
		!strings.Contains(d.Items[0].Reason, "used by svc (svco-1, Serving)") {
		t.Errorf("detail: %d %s", w.Code, w.Body)
	}
	if w := b.do(t, "GET", "/v1/runs/"+prev.ID+"?limit=0", tokenOld, ""); w.Code != http.StatusOK || decode[runDetail](t, w).Total != 2 {
		t.Errorf("detail without items: %d %s", w.Code, w.Body)
	}
	if w := b.do(t, "GET", "/v1/runs/nope", tokenOld, ""); w.Code != http.StatusNotFound {
		t.Errorf("unknown run: %d", w.Code)
	}
	if w := b.do(t, "GET", "/v1/runs/..%2Fx", tokenOld, ""); w.Code != http.StatusBadRequest {
		t.Errorf("bad run ID: %d", w.Code)
	}
	if w := b.do(t, "GET", "/v1/runs?limit=-1", tokenOld, ""); w.Code != http.StatusBadRequest {
		t.Errorf("bad limit: %d", w.Code)
	}
}

func TestRuleRoutesWithoutRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if w := b.do(t, "POST", "/v1/rules/tmp/run", tokenOld, ""); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "--schedule") {
		t.Errorf("rules off: %d %s", w.Code, w.Body)
	}
	if w := b.do(t, "GET", "/v1/runs", tokenOld, ""); w.Code != http.StatusNotFound {
		t.Errorf("runs off: %d %s", w.Code, w.Body)
	}
}

// captured keeps the requests a rule run enqueues.
type captured struct {
	mu   sync.Mutex
	reqs []enqueue.Request
}

func (c *captured) Enqueue(_ context.Context, r enqueue.Request) (enqueue.Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, r)
	return enqueue.Receipt{IDs: len(r.IDs)}, nil
}

// TestRuleRunCarriesTheTokensNames: a run asked for by a token with names
// carries them to its enqueued deletions, which workers check at call
// time; a run without a scope carries none.
func TestRuleRunCarriesTheTokensNames(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	rule := policy.Rule{Name: "tmp", Kind: modelid.KindModel, Delete: []policy.Selector{{Names: []string{"tmp-*"}}},
		Limit: policy.Limit{Share: 1}, DeleteInUse: true}
	enq := &captured{}
	runner := policy.NewRunner(rdb, memSource{}, enq, policy.Config{Logger: slog.New(slog.DiscardHandler)})
	sub := &submitted{}
	file := filepath.Join(t.TempDir(), "tokens.yaml")
	doc := "tokens:\n  - name: ci-rules\n    token_sha256: \"" + sumOf(tokenCI) + "\"\n    names: [\"ci-*\"]\n    may: [rules]\n" +
		"  - name: ops\n    token_sha256: \"" + sumOf(tokenOps) + "\"\n    may: [rules]\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	api, err := New(Config{TokensFile: file, Logger: slog.New(slog.DiscardHandler)}, Deps{
		Redis: rdb, Ledger: ledger.New(rdb, ledger.Config{}), DeadLetters: deadletter.NewStore(rdb), Producer: nopEnqueuer{},
		Rules: &Rules{Lookup: func(name string) (policy.Rule, bool) { return rule, name == "tmp" }, Submitter: sub},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := testBundle{api: api, rdb: rdb, logs: &bytes.Buffer{}}
	for _, tok := range []string{tokenCI, tokenOps} {
		if w := b.do(t, "POST", "/v1/rules/tmp/run", tok, ""); w.Code != http.StatusAccepted {
			t.Fatalf("run: %d %s", w.Code, w.Body)
		}
	}
	if len(sub.opts) != 2 || !slices.Equal(sub.opts[0].Names, []string{"ci-*"}) || sub.opts[1].Names != nil {
		t.Fatalf("submitted %+v; want ci-rules's run with [ci-*], ops's with none", sub.opts)
	}
	// The run as a worker executes it.
	if _, _, err := runner.Execute(context.Background(), rule, sub.opts[0]); err != nil {
		t.Fatal(err)
	}
	if len(enq.reqs) != 1 || !slices.Equal(enq.reqs[0].NameScope, []string{"ci-*"}) || len(enq.reqs[0].IDs) != 2 {
		t.Errorf("enqueued %+v; want the run's two IDs with the name scope [ci-*]", enq.reqs)
	}
}
