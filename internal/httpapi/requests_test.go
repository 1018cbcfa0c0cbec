package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// TestRequestRoutes: a keyed request made through the API is followed by
// its key, counts its IDs by state and lists them on demand; one ID of it
// is cancelled by ID and one already deleted is reported as such; a token
// without the cancel right is refused; bad parameters answer 400.
func TestRequestRoutes(t *testing.T) {
	b := setupWith(t, Config{TokensFile: tokensFile(t)}, func(d *Deps) {
		d.Attribute = func(r *enqueue.Request, by string, names []string) { r.RequestedBy, r.NameScope = by, names }
	})
	body := `{"model_ids":[585,586,"am-x1"],"key":"k-1"}`
	if w := b.do(t, "POST", "/v1/deletions", tokenPlain, body); w.Code != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s", w.Code, w.Body)
	}
	if _, err := b.ledger.Write(t.Context(), []ledger.Outcome{{Kind: modelid.KindModel, ID: modelid.IntID(585), State: ledger.StateDeleted, Key: "k-1", RequestedBy: "plain"}}); err != nil {
		t.Fatal(err)
	}
	w := b.do(t, "GET", "/v1/requests/k-1?ids=1", tokenCI, "")
	st := decode[enqueue.RequestStatus](t, w)
	if w.Code != http.StatusOK || st.RequestedBy != "plain" || st.IDs != 3 || st.States["deleted"] != 1 || st.States["pending"] != 2 ||
		len(st.ByState["pending"]) != 1 || !st.Truncated {
		t.Errorf("GET /v1/requests/k-1: %d %s", w.Code, w.Body)
	}
	if w := b.do(t, "DELETE", "/v1/deletions/586", tokenPlain, ""); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "may: [cancel]") {
		t.Errorf("cancel without the right: %d %s", w.Code, w.Body)
	}
	for _, tc := range []struct{ path, want string }{
		{"/v1/requests/k-1?ids=-1", "ids"},
		{"/v1/requests/k-1?ids=10001", "ids"},
	} {
		if w := b.do(t, "GET", tc.path, tokenCI, ""); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("GET %s: %d %s", tc.path, w.Code, w.Body)
		}
	}
	if w := b.do(t, "GET", "/v1/requests/nope", tokenCI, ""); w.Code != http.StatusNotFound {
		t.Errorf("unknown key: %d %s", w.Code, w.Body)
	}
}

// TestCancelDeletionRoute: with the right, a waiting ID is marked and
// one already deleted is reported; a bad ID answers 400.
func TestCancelDeletionRoute(t *testing.T) {
	b := setup(t)
	if _, err := b.ledger.Write(t.Context(), []ledger.Outcome{{Kind: modelid.KindModel, ID: modelid.IntID(585), State: ledger.StateDeleted}}); err != nil {
		t.Fatal(err)
	}
	w := b.do(t, "DELETE", "/v1/deletions/586", tokenOld, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"cancelled":true`) {
		t.Errorf("cancel a waiting ID: %d %s", w.Code, w.Body)
	}
	w = b.do(t, "DELETE", "/v1/deletions/585", tokenOld, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"cancelled":false`) || !strings.Contains(w.Body.String(), `"state":"deleted"`) {
		t.Errorf("cancel a deleted ID: %d %s", w.Code, w.Body)
	}
	if w := b.do(t, "DELETE", "/v1/deletions/amv-x?kind=model", tokenOld, ""); w.Code != http.StatusBadRequest {
		t.Errorf("a version ID as a model: %d %s", w.Code, w.Body)
	}
}

// TestRequestWithoutKey: a request given no key is answered with a key
// generated for it and the path to follow it, which counts its IDs; two
// such requests never share a key.
func TestRequestWithoutKey(t *testing.T) {
	b := setup(t)
	var keys []string
	for range 2 {
		w := b.do(t, "POST", "/v1/deletions", tokenOld, `{"model_ids":[585,586,"am-x1"]}`)
		rc := decode[deletionResponse](t, w)
		if w.Code != http.StatusAccepted || !strings.HasPrefix(rc.Key, "req-") || !rc.KeyGenerated || rc.Follow != "/v1/requests/"+rc.Key {
			t.Fatalf("enqueue without a key: %d %s", w.Code, w.Body)
		}
		w = b.do(t, "GET", rc.Follow, tokenOld, "")
		st := decode[enqueue.RequestStatus](t, w)
		if w.Code != http.StatusOK || st.Key != rc.Key || !st.KeyGenerated || st.IDs != 3 || st.States["pending"] != 3 {
			t.Errorf("GET %s: %d %s", rc.Follow, w.Code, w.Body)
		}
		keys = append(keys, rc.Key)
	}
	if keys[0] == keys[1] {
		t.Errorf("two requests without a key share %q", keys[0])
	}
	w := b.do(t, "POST", "/v1/deletions", tokenOld, `{"model_ids":[587],"key":"mine"}`)
	if rc := decode[deletionResponse](t, w); rc.Key != "mine" || rc.KeyGenerated || rc.Follow != "/v1/requests/mine" {
		t.Errorf("a given key: %d %s", w.Code, w.Body)
	}
}
