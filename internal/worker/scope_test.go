package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

// TestNameScopeAtCallTime: a token whose names are [ci-*] asks, in one
// request, for a ci- model, a prod- model, a model no listing shows and
// a ci- model it then cancels by ID while it waits. Only the first is
// deleted at the fake; the prod- model and the unlisted one read refused
// with the reason, the cancelled one cancelled, and the request's status
// counts each state. A token without the cancel right cannot cancel.
func TestNameScopeAtCallTime(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: a few seconds")
	}
	t.Parallel()
	inv := workertest.Models("am-ci1", "am-prod1", "am-ci2")
	for i, n := range []string{"ci-build-1", "prod-x", "ci-build-2"} {
		inv.Models[i].Name = n
	}
	e := workertest.New(t, qianfantest.Config{Inventory: inv})
	const ciToken, opsToken = "ci-token-0123456789abcdef", "ops-token-0123456789abcdef"
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	file := filepath.Join(t.TempDir(), "tokens.yaml")
	doc := "tokens:\n  - name: ci\n    token_sha256: \"" + sum(ciToken) + "\"\n    names: [\"ci-*\"]\n    may: [cancel]\n" +
		"  - name: ops\n    token_sha256: \"" + sum(opsToken) + "\"\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Paused by hand, so nothing is called before the cancel lands.
	ps := fleet.NewPauseStore(e.RDB)
	if _, err := ps.PauseManual(ctx, "test: cancel first"); err != nil {
		t.Fatal(err)
	}
	w, _ := e.Start(t, func(c *worker.Config) { c.API = worker.APIConfig{Addr: "127.0.0.1:0", TokensFile: file} })
	api := apiClient{t: t, base: "http://" + w.APIAddr()}
	body := `{"model_ids":["am-ci1","am-prod1","am-ghost","am-ci2"],"key":"ci-run-1"}`
	if code, _, b := api.call("POST", "/v1/deletions", ciToken, body); code != http.StatusAccepted {
		t.Fatalf("POST /v1/deletions: %d %s", code, b)
	}
	if code, _, b := api.call("DELETE", "/v1/deletions/am-ci2", opsToken, ""); code != http.StatusForbidden {
		t.Errorf("cancel by a token without the right: %d %s, want 403", code, b)
	}
	code, _, b := api.call("DELETE", "/v1/deletions/am-ci2", ciToken, "")
	if code != http.StatusOK || !strings.Contains(string(b), `"cancelled":true`) {
		t.Fatalf("cancel by ID: %d %s", code, b)
	}
	if _, err := ps.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	all := []modelid.ID{modelid.StringID("am-ci1"), modelid.StringID("am-prod1"), modelid.StringID("am-ghost"), modelid.StringID("am-ci2")}
	waitFinal(t, e, modelid.KindModel, all...)

	want := map[string]struct {
		state ledger.State
		msg   string
	}{
		"am-ci1":   {ledger.StateDeleted, ""},
		"am-prod1": {ledger.StateRefused, `name "prod-x" is outside token ci's scope [ci-*]`},
		"am-ghost": {ledger.StateRefused, "name cannot be learned"},
		"am-ci2":   {ledger.StateCancelled, "cancelled by ci (by ID)"},
	}
	for _, id := range all {
		r := record(t, e, modelid.KindModel, id)
		w := want[id.String()]
		if r.State != w.state || !strings.Contains(r.Message, w.msg) || r.RequestedBy != "ci" || r.Key != "ci-run-1" {
			t.Errorf("%s: %+v; want %s with %q, requested_by ci, key ci-run-1", id, r, w.state, w.msg)
		}
	}
	for _, id := range []string{"am-prod1", "am-ci2"} {
		if !e.Fake.Exists(qianfantest.KindModel, id) {
			t.Errorf("%s was deleted", id)
		}
	}
	if n := e.Fake.Stats().IDsDeleted; n != 1 {
		t.Errorf("%d deletions at the fake, want 1", n)
	}

	code, _, b = api.call("GET", "/v1/deletions/am-prod1", ciToken, "")
	if code != http.StatusOK || !strings.Contains(string(b), `"state":"refused"`) || !strings.Contains(string(b), `"requested_by":"ci"`) {
		t.Errorf("GET /v1/deletions/am-prod1: %d %s", code, b)
	}
	code, _, b = api.call("GET", "/v1/requests/ci-run-1?ids=10", opsToken, "")
	var st enqueue.RequestStatus
	if err := json.Unmarshal(b, &st); code != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/requests/ci-run-1: %d %s", code, b)
	}
	wantStates := map[string]int{"pending": 0, "deleted": 1, "presumed": 0, "dead": 0, "protected": 0, "cancelled": 1, "refused": 2}
	for s, n := range wantStates {
		if st.States[s] != n {
			t.Errorf("request status %s: %d, want %d (%s)", s, st.States[s], n, b)
		}
	}
	if st.IDs != 4 || st.RequestedBy != "ci" || st.Kind != modelid.KindModel || len(st.ByState["refused"]) != 2 {
		t.Errorf("request status %s", b)
	}
	if code, _, _ := api.call("GET", "/v1/requests/no-such-key", ciToken, ""); code != http.StatusNotFound {
		t.Errorf("unknown request: %d, want 404", code)
	}
}
