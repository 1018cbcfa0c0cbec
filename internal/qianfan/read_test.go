package qianfan

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

var invNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// setupInventory is setup with a generated inventory and the fake's clock at invNow.
func setupInventory(t *testing.T, g qianfantest.Generate, cfg qianfantest.Config, wrap func(http.Handler) http.Handler, opts ...Option) (*bundle, *qianfantest.Inventory) {
	t.Helper()
	inv := qianfantest.NewInventory(g, invNow)
	cfg.Inventory = inv
	return setup(t, cfg, wrap, opts...), inv
}

func TestReadsAreTypedAndSigned(t *testing.T) {
	t.Parallel()
	b, inv := setupInventory(t, qianfantest.Generate{Models: 3, Versions: 2, Services: 2, Seed: 1}, qianfantest.Config{}, nil)
	ctx := t.Context()
	m := inv.Models[0]

	page, res, err := b.client.ListModels(ctx, ModelListRequest{PageSize: 10})
	if err != nil || res.LogID == "" || res.Ambiguous || page.Total != 3 || len(page.Items) != 3 {
		t.Fatalf("ListModels: %+v %+v %v", page, res, err)
	}
	d, _, err := b.client.ModelDetail(ctx, modelid.IntID(m.ID))
	if err != nil {
		t.Fatal(err)
	}
	if d.ModelIDStr != m.IDStr || d.ModelName != m.Name || !d.CreateTime.Equal(m.CreateTime) ||
		len(d.Versions) != 2 || d.Versions[0].ModelVersionIDStr != m.Versions[0].IDStr || d.Versions[0].Version != "1" {
		t.Errorf("ModelDetail = %+v", d)
	}
	if _, off := d.CreateTime.Zone(); off != 8*3600 {
		t.Errorf("createTime offset %d, want +08:00 kept", off)
	}
	d2, _, err := b.client.ModelDetail(ctx, modelid.StringID(m.IDStr))
	if err != nil || d2.ModelID != m.ID {
		t.Errorf("ModelDetail by am- ID: %+v %v", d2, err)
	}
	v, _, err := b.client.ModelVersionDetail(ctx, modelid.StringID(m.Versions[1].IDStr))
	if err != nil || v.ModelVersionID != m.Versions[1].ID || v.ModelID != m.ID {
		t.Errorf("ModelVersionDetail = %+v, %v", v, err)
	}
	set, _, err := b.client.DescribeModelSet(ctx, m.IDStr)
	if err != nil || set.ModelSetName != m.Name || len(set.ModelIDs) != 2 || set.ModelType == "" {
		t.Errorf("DescribeModelSet = %+v, %v", set, err)
	}
	mv, _, err := b.client.DescribeModel(ctx, m.Versions[0].IDStr)
	if err != nil || mv.ModelSetID != m.IDStr || mv.Status != "Ready" || mv.SourceType != "Train" {
		t.Errorf("DescribeModel = %+v, %v", mv, err)
	}
	svc := inv.Services[0]
	s, _, err := b.client.DescribeService(ctx, svc.IDStr)
	if err != nil || s.ServiceID != svc.IDStr || s.RunStatus != svc.Status {
		t.Errorf("DescribeService = %+v, %v", s, err)
	}
	if models, versions := s.Refs(); !cmp.Equal(models, []string{svc.Model}) || !cmp.Equal(versions, []string{svc.Version}) {
		t.Errorf("Refs = %v %v", models, versions)
	}
	list, _, err := b.client.ListServices(ctx, ServiceListRequest{})
	if err != nil || len(list.Custom) != 2 || len(list.Common) == 0 {
		t.Fatalf("ListServices = %+v, %v", list, err)
	}
	st := b.fake.Stats()
	if st.Calls[qianfantest.OutcomeAuth] != 0 || st.Reads != 8 || st.Deletes != 0 {
		t.Errorf("stats %+v: every read must pass the fake's own verifier", st)
	}
}

func TestServiceListIDsInEitherForm(t *testing.T) {
	t.Parallel()
	for _, asStrings := range []bool{false, true} {
		b, inv := setupInventory(t, qianfantest.Generate{Models: 2, Versions: 1, Services: 1, Seed: 2},
			qianfantest.Config{Assumptions: qianfantest.Assumptions{V1ServiceIDsAsStrings: asStrings}}, nil)
		list, _, err := b.client.ListServices(t.Context(), ServiceListRequest{})
		if err != nil || len(list.Custom) != 1 {
			t.Fatalf("strings=%v: %+v %v", asStrings, list, err)
		}
		var model, version int64
		for _, m := range inv.Models {
			if m.IDStr == inv.Services[0].Model {
				model, version = m.ID, m.Versions[0].ID
			}
		}
		e := list.Custom[0]
		if e.ServiceID != modelid.IntID(inv.Services[0].ID) || e.Versions[0].AIModelID != modelid.IntID(model) ||
			e.Versions[0].AIModelVersionID != modelid.IntID(version) {
			t.Errorf("strings=%v: entry %+v, want int IDs %d/%d", asStrings, e, model, version)
		}
		if list.Common[0].Versions[0].AIModelID != (modelid.ID{}) {
			t.Errorf("preset service has a model ID: %+v", list.Common[0])
		}
	}
}

func TestWalkModelsV1(t *testing.T) {
	t.Parallel()
	b, inv := setupInventory(t, qianfantest.Generate{Models: 25, Versions: 1, Seed: 3},
		qianfantest.Config{Assumptions: qianfantest.Assumptions{V1MaxPageSize: 7}}, nil)
	// pageSize 10 is cut to 7 without a word: the walk still gets everything.
	l, err := b.client.WalkModelsV1(t.Context(), ModelListRequest{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Consistent() || len(l.Models) != 25 || l.Pages != 4 || l.FirstTotal != 25 {
		t.Errorf("listing %+v", l)
	}
	want := map[string]bool{}
	for _, m := range inv.Models {
		want[m.IDStr] = true
	}
	for _, m := range l.Models {
		delete(want, m.ModelIDStr)
		if m.ModelID == 0 || m.CreateTime.IsZero() || m.LatestVersion == nil || m.LatestVersion.VersionIDStr == "" {
			t.Errorf("item %+v", m)
		}
	}
	if len(want) != 0 {
		t.Errorf("not listed: %v", want)
	}
}

func TestWalkModelsV1DetectsSkipUnderDeletion(t *testing.T) {
	t.Parallel()
	var lists atomic.Int32
	var b *bundle
	var victim int64
	b, inv := setupInventory(t, qianfantest.Generate{Models: 12, Versions: 1, Seed: 4}, qianfantest.Config{},
		func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Someone else deletes a model of page 1 while the walk is between pages 1 and 2.
				if r.URL.Path == PathModelList && lists.Add(1) == 2 {
					if _, err := b.client.BatchDeleteModels(r.Context(), IntIDs{victim}); err != nil {
						t.Errorf("concurrent delete: %v", err)
					}
				}
				h.ServeHTTP(w, r)
			})
		})
	first, _, err := b.client.ListModels(t.Context(), ModelListRequest{PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	lists.Store(0)
	victim = first.Items[0].ModelID
	l, err := b.client.WalkModelsV1(t.Context(), ModelListRequest{PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	if l.Consistent() || l.FirstTotal != 12 || l.LastTotal != 11 {
		t.Errorf("walk under deletion: %+v, want inconsistent 12 -> 11", l)
	}
	// The shift skipped a model that still exists: absence proves nothing here.
	listed := map[string]bool{}
	for _, m := range l.Models {
		listed[m.ModelIDStr] = true
	}
	var skipped int
	for _, m := range inv.Models {
		if m.ID != victim && !listed[m.IDStr] && b.fake.Exists(qianfantest.KindModel, m.IDStr) {
			skipped++
		}
	}
	if skipped != 1 {
		t.Errorf("%d existing models missed, want 1 (the offset shift)", skipped)
	}
}

func TestWalkCustomModelSets(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var b *bundle
	var victims []string
	b, inv := setupInventory(t, qianfantest.Generate{Models: 23, Versions: 2, Seed: 5}, qianfantest.Config{},
		func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("Action") == ActionDescribeCustomModelSets && calls.Add(1) == 2 {
					for _, id := range victims {
						if _, err := b.client.DeleteModelSet(r.Context(), id); err != nil {
							t.Errorf("concurrent delete: %v", err)
						}
					}
				}
				h.ServeHTTP(w, r)
			})
		})
	sets, err := b.client.WalkCustomModelSets(t.Context(), 10)
	if err != nil || len(sets) != 23 {
		t.Fatalf("walk: %d sets, %v", len(sets), err)
	}
	if sets[0].CreateTime.IsZero() || sets[0].ModelCount != 2 || len(sets[0].ModelIDs) != 2 {
		t.Errorf("item %+v", sets[0])
	}
	// Deleting a listed model and the next page's first one mid-walk skips nothing else.
	calls.Store(0)
	victims = []string{sets[0].ModelSetID, sets[10].ModelSetID}
	again, err := b.client.WalkCustomModelSets(t.Context(), 10)
	if err != nil || len(again) != 22 {
		t.Fatalf("walk under deletion: %d sets, %v", len(again), err)
	}
	listed := map[string]bool{}
	for _, s := range again {
		listed[s.ModelSetID] = true
	}
	for _, m := range inv.Models {
		if m.IDStr != victims[1] && !listed[m.IDStr] {
			t.Errorf("%s skipped", m.IDStr)
		}
	}
}

func TestWalkServicesShapes(t *testing.T) {
	t.Parallel()
	for _, asm := range []qianfantest.Assumptions{
		{},
		{ServicesFlatPaging: true},
		{ServicesListField: "services"},
		{ServicesListField: "customServiceList", ServicesFlatPaging: true},
		{V2ServiceModelIDIsSet: true},
	} {
		b, inv := setupInventory(t, qianfantest.Generate{Models: 5, Versions: 1, Services: 13, Seed: 6},
			qianfantest.Config{Assumptions: asm}, nil)
		svcs, err := b.client.WalkServices(t.Context(), 5)
		if err != nil || len(svcs) != 13 {
			t.Errorf("%+v: %d services, %v", asm, len(svcs), err)
			continue
		}
		models, versions := svcs[0].Refs()
		if len(models) == 0 || (len(versions) == 0) != asm.V2ServiceModelIDIsSet {
			t.Errorf("%+v: Refs %v %v", asm, models, versions)
		}
		_ = inv
	}
	// A list under a name we do not know is unreadable, never "no services".
	b, _ := setupInventory(t, qianfantest.Generate{Models: 1, Services: 1, Seed: 7},
		qianfantest.Config{Assumptions: qianfantest.Assumptions{ServicesListField: "svcs"}}, nil)
	svcs, err := b.client.WalkServices(t.Context(), 5)
	if svcs != nil || !IsUnknown(err) {
		t.Errorf("unknown list field: %v, %v; want ClassUnknown", svcs, err)
	}
}

// pagedV2 serves marker pages from a script, for shapes the fake never makes.
func pagedV2(pages ...string) http.HandlerFunc {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := min(int(n.Add(1))-1, len(pages)-1)
		if strings.HasPrefix(pages[i], "HTTP ") {
			var status int
			fmt.Sscanf(pages[i], "HTTP %d", &status)
			w.WriteHeader(status)
			fmt.Fprint(w, strings.SplitN(pages[i], " ", 3)[2])
			return
		}
		fmt.Fprintf(w, `{"requestId":"r%d","result":%s}`, i, pages[i])
	}
}

func TestWalkMarkerEdges(t *testing.T) {
	t.Parallel()
	set := func(id string) string { return `{"modelSetId":"` + id + `","createTime":"2024-01-02T03:04:05+08:00"}` }
	page := func(truncated bool, next string, ids ...string) string {
		var items []string
		for _, id := range ids {
			items = append(items, set(id))
		}
		return fmt.Sprintf(`{"customModelSetList":[%s],"pageInfo":{"isTruncated":%v,"nextMarker":%q}}`,
			strings.Join(items, ","), truncated, next)
	}
	for _, tt := range []struct {
		name    string
		pages   []string
		want    []string
		wantErr func(error) bool
	}{
		{"empty last page", []string{page(true, "am-c", "am-a", "am-b"), page(false, "")}, []string{"am-a", "am-b"}, nil},
		{"empty account", []string{page(false, "")}, []string{}, nil},
		{"repeats dropped", []string{page(true, "am-b", "am-a", "am-b"), page(false, "", "am-b", "am-c")}, []string{"am-a", "am-b", "am-c"}, nil},
		{"truncated without next marker", []string{page(true, "", "am-a")}, nil,
			func(err error) bool { return errors.Is(err, ErrIncompleteListing) }},
		{"marker loop", []string{page(true, "am-b", "am-a"), page(true, "am-b", "am-b")}, nil,
			func(err error) bool { return errors.Is(err, ErrIncompleteListing) }},
		{"page failing mid-listing", []string{page(true, "am-b", "am-a"), `HTTP 400 {"requestId":"x","code":"Weird","message":"?"}`}, nil,
			func(err error) bool {
				var e *Error
				return errors.As(err, &e) && e.ErrorCode == "Weird" && IsUnknown(err)
			}},
		{"page gone mid-listing", []string{page(true, "am-b", "am-a"), `HTTP 404 `}, nil, IsGone},
		{"page with a bad time", []string{`{"customModelSetList":[{"modelSetId":"am-a","createTime":"yesterday"}],"pageInfo":{}}`}, nil, IsUnknown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, pagedV2(tt.pages...))
			c, _ := New(Credentials{"ak", testSecret}, WithBaseURL(srv.URL), WithMaxElapsed(0))
			sets, err := c.WalkCustomModelSets(t.Context(), 2)
			if tt.wantErr != nil {
				if sets != nil || !tt.wantErr(err) {
					t.Errorf("got %v, %v; want no listing and a matching error", sets, err)
				}
				return
			}
			var ids []string
			for _, s := range sets {
				ids = append(ids, s.ModelSetID)
			}
			if err != nil || !cmp.Equal(tt.want, append([]string{}, ids...)) {
				t.Errorf("got %v, %v; want %v", ids, err, tt.want)
			}
		})
	}
	// V1: a page failing mid-listing fails the walk; an empty page ends it.
	srv := newServer(t, func() http.HandlerFunc {
		var n atomic.Int32
		return func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				fmt.Fprint(w, `{"log_id":1,"result":{"total":4,"items":[{"modelId":1},{"modelId":"2"}]}}`)
				return
			}
			fmt.Fprint(w, `{"log_id":2,"error_code":999999,"error_msg":"new"}`)
		}
	}())
	c, _ := New(Credentials{"ak", testSecret}, WithBaseURL(srv.URL), WithMaxElapsed(0))
	if l, err := c.WalkModelsV1(t.Context(), ModelListRequest{PageSize: 2}); err == nil || !IsUnknown(err) || l.Models != nil {
		t.Errorf("V1 failing page: %+v, %v", l, err)
	}
	srv = newServer(t, jsonAnswer(200, `{"log_id":1,"result":{"total":4,"items":[]}}`))
	c, _ = New(Credentials{"ak", testSecret}, WithBaseURL(srv.URL))
	if l, err := c.WalkModelsV1(t.Context(), ModelListRequest{}); err != nil || l.Consistent() || l.Pages != 1 {
		t.Errorf("V1 empty page: %+v, %v; want an inconsistent listing", l, err)
	}
}

func TestV2DeletesAgainstTheFake(t *testing.T) {
	t.Parallel()
	b, inv := setupInventory(t, qianfantest.Generate{Models: 3, Versions: 2, Seed: 8}, qianfantest.Config{}, nil)
	ctx := t.Context()
	m := inv.Models[0]
	res, err := b.client.DeleteModelSet(ctx, m.IDStr)
	if err != nil || res.LogID == "" || res.Attempts != 1 {
		t.Fatalf("DeleteModelSet: %+v %v", res, err)
	}
	for _, v := range m.Versions {
		if b.fake.Exists(qianfantest.KindVersion, v.IDStr) {
			t.Errorf("version %s survived its model", v.IDStr)
		}
	}
	if _, err := b.client.DeleteModel(ctx, inv.Models[1].Versions[0].IDStr); err != nil {
		t.Fatal(err)
	}
	// Again: "not found" names no culprit, so it is unknown, never success.
	_, err = b.client.DeleteModelSet(ctx, m.IDStr)
	var e *Error
	if !errors.As(err, &e) || !IsUnknown(err) || e.ErrorCode != "NoSuchKey" || e.HTTPStatus != 404 || e.LogID == "" {
		t.Errorf("repeat delete: %#v", err)
	}
	if _, _, err := b.client.DescribeModelSet(ctx, m.IDStr); !IsUnknown(err) {
		t.Errorf("describe deleted: %v", err)
	}
	if _, _, err := b.client.ModelDetail(ctx, modelid.IntID(m.ID)); !IsInvalidIDs(err) {
		t.Errorf("V1 detail of deleted: %v", err)
	}
	// Switched: a V2 delete refused because a service runs the model.
	b.fake.SetAssumptions(qianfantest.Assumptions{RefuseInUse: true})
	if err := b.fake.AddService(qianfantest.Service{ID: 9, IDStr: "svco-x", Name: "x", Status: "New"}); err != nil {
		t.Fatal(err)
	}
	if err := b.fake.SetServiceVersion("svco-x", inv.Models[2].Versions[0].IDStr); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.DeleteModel(ctx, inv.Models[2].Versions[0].IDStr); !IsInvalidIDs(err) {
		t.Errorf("in-use delete: %v", err)
	}
	if st := b.fake.Stats(); st.Deletes != 4 || st.Calls[qianfantest.OutcomeAuth] != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestGoneIsNeverSuccessNorInvalidIDs(t *testing.T) {
	t.Parallel()
	b, _ := setupInventory(t, qianfantest.Generate{Models: 3, Versions: 1, Seed: 9}, qianfantest.Config{V1OffAfter: 1}, nil)
	ctx := t.Context()
	if _, err := b.client.BatchDeleteModels(ctx, IntIDs{10000}); err != nil {
		t.Fatal(err)
	}
	_, err := b.client.BatchDeleteModels(ctx, IntIDs{10001})
	var e *Error
	if !IsGone(err) || !errors.As(err, &e) || e.Attempts != 1 || e.Endpoint != PathBatchDeleteModels {
		t.Fatalf("V1 off: %#v", err)
	}
	if !b.fake.Exists(qianfantest.KindModel, 10001) {
		t.Error("deleted while off")
	}
	for name, form := range qianfantest.GoneForms() {
		b.fake.SetAssumptions(qianfantest.Assumptions{V1Gone: form, V2Gone: form})
		b.fake.SetV1Off(true)
		b.fake.SetV2Off(true)
		for _, call := range []func() error{
			func() error { _, err := b.client.BatchDeleteModels(ctx, IntIDs{10002}); return err },
			func() error { _, err := b.client.BatchDeleteModelVersions(ctx, StringIDs{"amv-x"}); return err },
			func() error { _, err := b.client.DeleteModelSet(ctx, "am-x"); return err },
			func() error { _, err := b.client.DeleteModel(ctx, "amv-x"); return err },
			func() error { _, err := b.client.WalkModelsV1(ctx, ModelListRequest{}); return err },
			func() error { _, err := b.client.WalkCustomModelSets(ctx, 0); return err },
			func() error { _, err := b.client.WalkServices(ctx, 0); return err },
		} {
			err := call()
			if c := Classify(err); c != ClassGone && c != ClassUnknown {
				t.Errorf("%s: %v classed %v, want gone or unknown", name, err, c)
			}
		}
	}
	if !b.fake.Exists(qianfantest.KindModel, 10002) {
		t.Error("deleted while off")
	}
}

func TestRevokedKeyAndPermission(t *testing.T) {
	t.Parallel()
	b, inv := setupInventory(t, qianfantest.Generate{Models: 2, Versions: 1, Seed: 10}, qianfantest.Config{}, nil)
	ctx := t.Context()
	b.fake.Revoke("ak")
	_, err := b.client.DeleteModelSet(ctx, inv.Models[0].IDStr)
	if !IsRequestError(err) || CredentialProblemOf(err) != CredentialUnknownKey || strings.Contains(err.Error(), testSecret) {
		t.Errorf("revoked: %v (%v)", err, CredentialProblemOf(err))
	}
	b.fake.Restore("ak")
	b.fake.SetPermission("ak", qianfantest.PermRead)
	if _, err := b.client.WalkCustomModelSets(ctx, 0); err != nil {
		t.Errorf("read-only key cannot read: %v", err)
	}
	_, err = b.client.BatchDeleteModels(ctx, IntIDs{inv.Models[0].ID})
	var e *Error
	if !errors.As(err, &e) || e.HTTPStatus != 403 || e.Attempts != 1 || e.Credential() != CredentialNoPermission {
		t.Errorf("read-only delete: %#v", err)
	}
	if !b.fake.Exists(qianfantest.KindModel, inv.Models[0].ID) {
		t.Error("deleted without permission")
	}
}

func TestReadsRetryAndAreNeverAmbiguous(t *testing.T) {
	t.Parallel()
	l := &countingLimiter{}
	b, _ := setupInventory(t, qianfantest.Generate{Models: 2, Seed: 11}, qianfantest.Config{}, nil, WithLimiter(l),
		WithMaxElapsed(100*time.Millisecond))
	b.fake.SetFaults(qianfantest.Faults{RateReset: 1})
	_, res, err := b.client.ListModels(t.Context(), ModelListRequest{})
	var e *Error
	if !IsTransient(err) || !errors.As(err, &e) || e.Ambiguous || res.Ambiguous || e.Attempts < 2 {
		t.Errorf("reset reads: %#v", err)
	}
	if int(l.n.Load()) != e.Attempts {
		t.Errorf("limiter waited %d times for %d attempts", l.n.Load(), e.Attempts)
	}
	b.fake.SetFaults(qianfantest.Faults{Rate503: 0.3, Seed: 3})
	if _, err := b.client.WalkModelsV1(t.Context(), ModelListRequest{PageSize: 1}); err != nil {
		t.Errorf("503s are retried: %v", err)
	}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
