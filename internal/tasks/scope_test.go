package tasks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/qfpurge/qfpurge/internal/inuse"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

func sids(ss ...string) []modelid.ID {
	out := make([]modelid.ID, len(ss))
	for i, s := range ss {
		out[i] = modelid.StringID(s)
	}
	return out
}

// listNames saves a listing taken now that shows the given models (am- ID
// → name) and decides string model IDs.
func listNames(t *testing.T, st *inventory.Store, names map[string]string) {
	t.Helper()
	seq, err := st.Stamp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := &inventory.Snapshot{Taken: time.Now(), Seq: seq, Decides: []inventory.Form{{Kind: modelid.KindModel, Type: modelid.IDString}}}
	for id, n := range names {
		s.Models = append(s.Models, inventory.Model{ID: id, Name: n})
	}
	if err := st.Save(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// sent reports whether any call of the account carried id.
func (a *account) sent(id modelid.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.calls {
		if slices.Contains(c, id) {
			return true
		}
	}
	return false
}

// TestHandlerRefusesOutsideTheNameScope: a token's out-of-scope ID is never
// sent and ends refused naming its name, the token and the globs; its
// in-scope sibling in the same batch is deleted. delete_in_use does not
// lift the scope. An ID of another request in the same merged batch, with
// no scope, is deleted whatever its name.
func TestHandlerRefusesOutsideTheNameScope(t *testing.T) {
	acct := newAccount(sids("am-ci1", "am-prod1", "am-other")...)
	b := setup(t, acct)
	listNames(t, b.inv, map[string]string{"am-ci1": "ci-build-7", "am-prod1": "prod-x", "am-other": "prod-y"})
	task := newBatch(t, sids("am-ci1", "am-prod1", "am-other"), func(p *Payload) {
		p.DeleteInUse = true
		p.Origins = []Origin{
			{Key: "k-ci", RequestedBy: "ci", Names: []string{"ci-*"}, IDs: sids("am-ci1", "am-prod1")},
			{Key: "k-ops", RequestedBy: "ops", IDs: sids("am-other")},
		}
	})
	res := b.drain(t, task, "t1", nil)
	if res.waits != 0 || len(res.archived) != 0 {
		t.Errorf("drain: %+v; want no wait (every name known), nothing archived", res)
	}
	want := []ledger.State{ledger.StateDeleted, ledger.StateRefused, ledger.StateDeleted}
	if diff := cmp.Diff(want, b.states(t, sids("am-ci1", "am-prod1", "am-other"))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if acct.sent(modelid.StringID("am-prod1")) || !acct.exists[modelid.StringID("am-prod1")] {
		t.Error("the out-of-scope ID was sent")
	}
	r, _, _ := b.ledger.Lookup(context.Background(), modelid.KindModel, modelid.StringID("am-prod1"))
	if wantMsg := `name "prod-x" is outside token ci's scope [ci-*]`; !strings.Contains(r.Message, wantMsg) || r.Key != "k-ci" || r.RequestedBy != "ci" {
		t.Errorf("refused record %+v; want its message to hold %q, key k-ci, requested_by ci", r, wantMsg)
	}
}

// TestHandlerRefusesWhatNoListingNames: an ID no listing has named makes
// the batch wait, without a retry and without a call, for a listing taken
// after it asked; an ID that listing does not name either is refused and
// never sent, while the one it names in scope is deleted.
func TestHandlerRefusesWhatNoListingNames(t *testing.T) {
	acct := newAccount(sids("am-new", "am-hidden")...)
	b := setup(t, acct)
	task := newBatch(t, sids("am-new", "am-hidden"), func(p *Payload) {
		p.Key, p.RequestedBy, p.Names = "k1", "ci", []string{"ci-*"}
	})
	listed := 0
	res := b.drain(t, task, "t2", func() {
		if acct.callCount() != 0 {
			t.Error("a call went out before the names were known")
		}
		listed++
		// The listing shows am-new; am-hidden (a model the read key may not
		// list, say) is not in it.
		listNames(t, b.inv, map[string]string{"am-new": "ci-new"})
	})
	if res.waits != 1 || listed != 1 || len(res.archived) != 0 {
		t.Errorf("drain: %+v after %d listings; want one wait for one listing", res, listed)
	}
	want := []ledger.State{ledger.StateDeleted, ledger.StateRefused}
	if diff := cmp.Diff(want, b.states(t, sids("am-new", "am-hidden"))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if acct.sent(modelid.StringID("am-hidden")) {
		t.Error("the ID whose name could not be learned was sent")
	}
	r, _, _ := b.ledger.Lookup(context.Background(), modelid.KindModel, modelid.StringID("am-hidden"))
	if !strings.Contains(r.Message, "name cannot be learned") || !strings.Contains(r.Message, "ci-*") {
		t.Errorf("refused record %+v; want it to say the name cannot be learned, naming the scope", r)
	}
}

// TestHandlerNamesVersionsByTheirModel: a version is in scope when its
// model's name is, through the parents a listing taught.
func TestHandlerNamesVersionsByTheirModel(t *testing.T) {
	acct := newAccount(sids("amv-a1", "amv-b1")...)
	b := setup(t, acct)
	seq, err := b.inv.Stamp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.inv.Save(context.Background(), &inventory.Snapshot{Taken: time.Now(), Seq: seq,
		Decides: []inventory.Form{{Kind: modelid.KindVersion, Type: modelid.IDString}},
		Models: []inventory.Model{
			{ID: "am-a", Name: "ci-a", Versions: []string{"amv-a1"}},
			{ID: "am-b", Name: "prod-b", Versions: []string{"amv-b1"}},
		}}); err != nil {
		t.Fatal(err)
	}
	task := newBatch(t, sids("amv-a1", "amv-b1"), func(p *Payload) {
		p.Kind, p.RequestedBy, p.Names = modelid.KindVersion, "ci", []string{"ci-*"}
	})
	b.drain(t, task, "t3", nil)
	recs, err := b.ledger.LookupMany(context.Background(), modelid.KindVersion, sids("amv-a1", "amv-b1"))
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].State != ledger.StateDeleted || recs[1].State != ledger.StateRefused || !strings.Contains(recs[1].Message, `"prod-b"`) {
		t.Errorf("records %+v; want the ci model's version deleted, the prod one refused naming prod-b", recs)
	}
}

// TestHandlerCancelledByID: an ID cancelled by ID while it waits is taken
// out before the call and recorded cancelled, never sent; its batch's
// other ID is deleted; an ID already settled is reported with its state
// and not marked. The mark is spent: the ID enqueued again is deleted.
func TestHandlerCancelledByID(t *testing.T) {
	acct := newAccount(ids(1, 2)...)
	// The in-use view cannot tell at first: the batch waits after the
	// cancelled ID is recorded, and its next execution must not send it.
	g := &onceCannotTell{}
	b := setup(t, acct, func(c *HandlerConfig) { c.Guard = g })
	ctx := context.Background()
	if _, err := b.ledger.Write(ctx, []ledger.Outcome{{Kind: modelid.KindModel, ID: modelid.IntID(9), State: ledger.StateDeleted}}); err != nil {
		t.Fatal(err)
	}
	got, err := b.ledger.CancelIDs(ctx, modelid.KindModel, ids(2, 9), "alice@ops")
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Marked || got[1].Marked || got[1].State != ledger.StateDeleted {
		t.Errorf("CancelIDs: %+v; want 2 marked, 9 reported deleted", got)
	}
	if res := b.drain(t, newBatch(t, ids(1, 2)), "t4", nil); res.waits != 1 {
		t.Errorf("drain: %+v; want one wait for the in-use view", res)
	}
	if diff := cmp.Diff([]ledger.State{ledger.StateDeleted, ledger.StateCancelled}, b.states(t, ids(1, 2))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if acct.sent(modelid.IntID(2)) {
		t.Error("the ID cancelled by ID was sent")
	}
	r, _, _ := b.ledger.Lookup(ctx, modelid.KindModel, modelid.IntID(2))
	if !strings.Contains(r.Message, "cancelled by alice@ops (by ID)") {
		t.Errorf("cancelled record %+v", r)
	}
	b.drain(t, newBatch(t, ids(2)), "t5", nil)
	if st := b.states(t, ids(2))[0]; st != ledger.StateDeleted || !acct.sent(modelid.IntID(2)) {
		t.Errorf("enqueued again after its cancel: %s; want deleted (the mark is spent)", st)
	}
}

// onceCannotTell is an in-use view that cannot tell on its first check,
// then finds everything free.
type onceCannotTell struct{ n atomic.Int32 }

func (o *onceCannotTell) Check(ctx context.Context, k modelid.Kind, list []modelid.ID) ([]inuse.Result, error) {
	if o.n.Add(1) == 1 {
		return nil, fmt.Errorf("%w: a page failed", inuse.ErrCannotTell)
	}
	return guard{}.Check(ctx, k, list)
}
