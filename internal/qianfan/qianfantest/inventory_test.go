package qianfantest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// invBundle is a fake with an inventory behind an httptest server.
type invBundle struct {
	fake *Server
	srv  *httptest.Server
	inv  *Inventory
}

func setupInventory(t *testing.T, g Generate, cfg Config) *invBundle {
	t.Helper()
	inv := NewInventory(g, testNow)
	cfg.Inventory = inv
	cfg.Now = func() time.Time { return testNow }
	fake := New(cfg)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	return &invBundle{fake: fake, srv: srv, inv: inv}
}

// post sends a Baidu-signed call; path may carry ?Action=.
func (b *invBundle) post(t *testing.T, path, body string) answer {
	t.Helper()
	return send(t, baiduSigned(t, b.srv.URL, path, body, DefaultAccessKey, DefaultSecretKey, testNow, nil))
}

// result returns the answer's result object, failing the test on an error answer.
func (a answer) result(t *testing.T) map[string]any {
	t.Helper()
	r, ok := a.body["result"].(map[string]any)
	if a.status != 200 || !ok || a.body["error_code"] != nil || a.body["code"] != nil {
		t.Fatalf("want success, got %+v", a)
	}
	return r
}

func TestNewInventory(t *testing.T) {
	t.Parallel()
	g := Generate{Models: 12, Versions: 3, Services: 4, Seed: 7}
	a, b := NewInventory(g, testNow), NewInventory(g, testNow)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different inventories (-a +b):\n%s", diff)
	}
	if c := NewInventory(Generate{Models: 12, Versions: 3, Services: 4, Seed: 8}, testNow); cmp.Equal(a, c) {
		t.Error("another seed gave the same inventory")
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(a.Models) != 12 || len(a.Services) != 4 {
		t.Fatalf("%d models, %d services", len(a.Models), len(a.Services))
	}
	names := regexp.MustCompile(`^(ci-run-\d{4}|exp-[a-z]+-\d+|prod-[a-z]+-\d+|[a-z]+-\d+-keep)$`)
	patterns := map[string]bool{}
	for _, m := range a.Models {
		if !names.MatchString(m.Name) {
			t.Errorf("name %q matches no pattern", m.Name)
		}
		patterns[strings.SplitN(m.Name, "-", 2)[0]] = true
		if m.CreateTime.After(testNow) || m.CreateTime.Before(testNow.AddDate(-1, 0, -1)) {
			t.Errorf("model %s created %v, not within the past year", m.IDStr, m.CreateTime)
		}
		if len(m.Versions) != 3 {
			t.Errorf("model %s has %d versions", m.IDStr, len(m.Versions))
		}
		for _, v := range m.Versions {
			if v.CreateTime.Before(m.CreateTime) || v.CreateTime.After(testNow) {
				t.Errorf("version %s created %v, outside [%v, %v]", v.IDStr, v.CreateTime, m.CreateTime, testNow)
			}
		}
	}
	if len(patterns) < 4 {
		t.Errorf("only name kinds %v", patterns)
	}
	var buf bytes.Buffer
	if err := a.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadInventory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, back, cmp.Comparer(func(x, y time.Time) bool { return x.Equal(y) })); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
}

func TestInventoryValidate(t *testing.T) {
	t.Parallel()
	ok := func() *Inventory {
		return &Inventory{
			Models:   []Model{{ID: 1, IDStr: "am-a", Versions: []Version{{ID: 2, IDStr: "amv-a"}}}, {ID: 3, IDStr: "am-b"}},
			Services: []Service{{ID: 4, IDStr: "svco-a", Status: "Serving", Model: "am-a", Version: "amv-a"}},
		}
	}
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Inventory){
		"model without int ID":      func(i *Inventory) { i.Models[0].ID = 0 },
		"model with an amv- ID":     func(i *Inventory) { i.Models[1].IDStr = "amv-b" },
		"repeated model ID":         func(i *Inventory) { i.Models[1].ID = 1 },
		"repeated string ID":        func(i *Inventory) { i.Models[1].IDStr = "am-a" },
		"bare prefix":               func(i *Inventory) { i.Models[1].IDStr = "am-" },
		"version with an am- ID":    func(i *Inventory) { i.Models[0].Versions[0].IDStr = "am-x" },
		"service with bad status":   func(i *Inventory) { i.Services[0].Status = "Running" },
		"service runs unknown":      func(i *Inventory) { i.Services[0].Version = "amv-zz" },
		"service version not model": func(i *Inventory) { i.Services[0].Model = "am-b" },
		"service without svco-":     func(i *Inventory) { i.Services[0].IDStr = "svc-a" },
	} {
		inv := ok()
		mutate(inv)
		if inv.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ReadInventory(strings.NewReader(`{"models":[],"extra":1}`)); err == nil {
		t.Error("ReadInventory accepted an unknown field")
	}
}

const (
	pathList     = "/wenxinworkshop/modelrepo/model/user/list"
	pathVersions = "/wenxinworkshop/modelrepo/model/version/batchDelete"
	pathSets     = "/v2/model?Action=DescribeCustomModelSets"
)

// v1IDs lists one V1 page's model IDs and the total.
func v1IDs(t *testing.T, b *invBundle, pageNo, pageSize int) ([]string, int) {
	t.Helper()
	r := b.post(t, pathList, fmt.Sprintf(`{"pageNo":%d,"pageSize":%d}`, pageNo, pageSize)).result(t)
	var ids []string
	for _, it := range r["items"].([]any) {
		ids = append(ids, it.(map[string]any)["modelIdStr"].(string))
	}
	return ids, int(r["total"].(float64))
}

func TestV1OffsetPagesShiftOnDelete(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 10, Versions: 1, Seed: 1}, Config{})
	p1, total := v1IDs(t, b, 1, 4)
	p2, _ := v1IDs(t, b, 2, 4)
	p3, _ := v1IDs(t, b, 3, 4)
	if total != 10 || len(p1) != 4 || len(p2) != 4 || len(p3) != 2 {
		t.Fatalf("pages %v %v %v, total %d", p1, p2, p3, total)
	}
	// Newest first.
	first := b.post(t, pathList, `{"pageNo":1,"pageSize":10}`).result(t)["items"].([]any)
	for i := 1; i < len(first); i++ {
		if first[i-1].(map[string]any)["createTime"].(string) < first[i].(map[string]any)["createTime"].(string) {
			t.Errorf("not newest first at %d", i)
		}
	}
	// Delete a model of page 1: page 2 now starts one later, so one model is never seen.
	if a := b.post(t, modelPath, fmt.Sprintf(`{"modelIDs":[%q]}`, p1[0])); a.body["error_code"] != nil {
		t.Fatalf("delete: %+v", a)
	}
	p2after, totalAfter := v1IDs(t, b, 2, 4)
	if totalAfter != 9 || p2after[0] != p2[1] {
		t.Errorf("after deleting %s: page 2 = %v (total %d), want it to start at %s", p1[0], p2after, totalAfter, p2[1])
	}
}

func TestV1PageSizeAssumptions(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 5, Seed: 1}, Config{Assumptions: Assumptions{V1MaxPageSize: 2}})
	if ids, total := v1IDs(t, b, 1, 50); len(ids) != 2 || total != 5 {
		t.Errorf("cut page: %d items, total %d; want 2 of 5", len(ids), total)
	}
	b.fake.SetAssumptions(Assumptions{V1MaxPageSize: 2, V1RejectLargePage: true})
	if a := b.post(t, pathList, `{"pageNo":1,"pageSize":3}`); a.body["error_code"] != float64(336003) {
		t.Errorf("rejected page: %+v", a)
	}
	// Filters.
	b.fake.SetAssumptions(Assumptions{})
	r := b.post(t, pathList, `{"pageNo":1,"pageSize":10,"nameFilter":"ci-"}`).result(t)
	for _, it := range r["items"].([]any) {
		if name := it.(map[string]any)["modelName"].(string); !strings.Contains(name, "ci-") {
			t.Errorf("nameFilter ci- listed %s", name)
		}
	}
}

// v2Walk lists every model set by marker, deleting before each page after the first if del says so.
func v2Walk(t *testing.T, b *invBundle, maxKeys int, between func(page int)) []string {
	t.Helper()
	var ids []string
	marker := ""
	for page := 0; ; page++ {
		if page > 0 && between != nil {
			between(page)
		}
		r := b.post(t, pathSets, fmt.Sprintf(`{"marker":%q,"maxKeys":%d}`, marker, maxKeys)).result(t)
		for _, it := range r["customModelSetList"].([]any) {
			ids = append(ids, it.(map[string]any)["modelSetId"].(string))
		}
		info := r["pageInfo"].(map[string]any)
		if info["isTruncated"] != true {
			if info["nextMarker"] != "" {
				t.Errorf("last page has nextMarker %v", info["nextMarker"])
			}
			return ids
		}
		marker = info["nextMarker"].(string)
	}
}

func TestV2MarkerPagesStableUnderDelete(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 10, Versions: 2, Seed: 2}, Config{})
	all := v2Walk(t, b, 3, nil)
	if len(all) != 10 {
		t.Fatalf("walk listed %d of 10", len(all))
	}
	// Delete a model already listed and the one the next marker names: the
	// rest is still listed exactly once.
	b2 := setupInventory(t, Generate{Models: 10, Versions: 2, Seed: 2}, Config{})
	got := v2Walk(t, b2, 3, func(page int) {
		if page == 1 {
			for _, id := range []string{all[0], all[3]} {
				b2.post(t, "/v2/model?Action=DeleteModelSet", fmt.Sprintf(`{"modelSetId":%q}`, id)).result(t)
			}
		}
	})
	want := append(append([]string{}, all[:3]...), all[4:]...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("walk under deletion (-want +got):\n%s", diff)
	}
	// maxKeys: default 10, cap 100.
	b3 := setupInventory(t, Generate{Models: 120, Seed: 3}, Config{})
	for _, tt := range []struct{ ask, want int }{{0, 10}, {500, 100}, {7, 7}} {
		r := b3.post(t, pathSets, fmt.Sprintf(`{"maxKeys":%d}`, tt.ask)).result(t)
		if n := len(r["customModelSetList"].([]any)); n != tt.want {
			t.Errorf("maxKeys %d: %d items, want %d", tt.ask, n, tt.want)
		}
	}
}

func TestDeletesThroughEveryEndpoint(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 6, Versions: 2, Seed: 4}, Config{})
	m := b.inv.Models
	for _, tt := range []struct {
		name, path, body string
		gone             []string // kind:id now absent
	}{
		{"V1 model by int", modelPath, fmt.Sprintf(`{"modelIDs":[%d]}`, m[0].ID),
			[]string{"model:" + m[0].IDStr, "version:" + m[0].Versions[0].IDStr, "version:" + m[0].Versions[1].IDStr}},
		{"V1 model by string", modelPath, fmt.Sprintf(`{"modelIDs":[%q]}`, m[1].IDStr), []string{"model:" + m[1].IDStr}},
		{"V1 version by int", pathVersions, fmt.Sprintf(`{"modelVersionIds":[%d]}`, m[2].Versions[0].ID),
			[]string{"version:" + m[2].Versions[0].IDStr}},
		{"V1 version by string", pathVersions, fmt.Sprintf(`{"modelVersionIds":[%q]}`, m[2].Versions[1].IDStr),
			[]string{"version:" + m[2].Versions[1].IDStr}},
		{"V2 model set", "/v2/model?Action=DeleteModelSet", fmt.Sprintf(`{"modelSetId":%q}`, m[3].IDStr),
			[]string{"model:" + m[3].IDStr, "version:" + m[3].Versions[1].IDStr}},
		{"V2 model (version)", "/v2/model?Action=DeleteModel", fmt.Sprintf(`{"modelId":%q}`, m[4].Versions[0].IDStr),
			[]string{"version:" + m[4].Versions[0].IDStr}},
	} {
		b.post(t, tt.path, tt.body).result(t)
		for _, g := range tt.gone {
			kind, id, _ := strings.Cut(g, ":")
			if b.fake.Exists(kind, id) || b.fake.DeleteCount(kind, id) != 1 {
				t.Errorf("%s: %s exists=%v deleted %d times", tt.name, g, b.fake.Exists(kind, id), b.fake.DeleteCount(kind, id))
			}
		}
	}
	// Both ID forms count, and the cascade is counted.
	if b.fake.DeleteCount(KindModel, m[0].ID) != 1 || b.fake.DeleteCount(KindModel, m[1].ID) != 1 ||
		b.fake.DeleteCount(KindVersion, m[0].Versions[0].ID) != 1 {
		t.Error("DeleteCount misses the other ID form")
	}
	if !b.fake.Exists(KindModel, m[2].IDStr) || !b.fake.Exists(KindModel, m[5].ID) || !b.fake.Exists(KindVersion, m[4].Versions[1].ID) {
		t.Error("something else went missing")
	}
	st := b.fake.Stats()
	if st.IDsDeleted != 6 || st.CascadeDeletes != 6 || st.Deletes != 6 || st.Reads != 0 ||
		st.Endpoints[modelPath] != 2 || st.Endpoints["/v2/model?Action=DeleteModel"] != 1 {
		t.Errorf("stats %+v", st)
	}
	// Deleted IDs now answer as missing ones do, through each endpoint.
	for _, tt := range []struct {
		path, body string
		status     int
		code       any
	}{
		{modelPath, fmt.Sprintf(`{"modelIDs":[%q]}`, m[0].IDStr), 200, float64(500001)},
		{modelPath, `{"modelIDs":[999999]}`, 200, float64(500001)},
		{pathVersions, fmt.Sprintf(`{"modelVersionIds":[%d]}`, m[0].Versions[0].ID), 200, float64(500001)},
		{"/v2/model?Action=DeleteModelSet", fmt.Sprintf(`{"modelSetId":%q}`, m[3].IDStr), 404, "NoSuchKey"},
		{"/v2/model?Action=DeleteModel", `{"modelId":"amv-nope"}`, 404, "NoSuchKey"},
		{"/v2/model?Action=DeleteModelSet", fmt.Sprintf(`{"modelSetId":%d}`, m[5].ID), 400, "InappropriateJSON"},
		{"/v2/model?Action=DescribeModelSet", `{"modelSetId":"am-nope"}`, 404, "NoSuchKey"},
		{"/wenxinworkshop/modelrepo/modelDetail", `{"modelId":"am-nope"}`, 200, float64(500001)},
	} {
		a := b.post(t, tt.path, tt.body)
		code := a.body["error_code"]
		if code == nil {
			code = a.body["code"]
		}
		if a.status != tt.status || code != tt.code {
			t.Errorf("%s %s: got %+v, want %d %v", tt.path, tt.body, a, tt.status, tt.code)
		}
	}
	if st := b.fake.Stats(); st.RepeatDeletes != 3 {
		t.Errorf("RepeatDeletes = %d, want 3", st.RepeatDeletes)
	}
}

func TestBatchAtomicityAssumption(t *testing.T) {
	t.Parallel()
	for _, partial := range []bool{false, true} {
		b := setupInventory(t, Generate{Models: 3, Seed: 5}, Config{Assumptions: Assumptions{V1PartialBatch: partial}})
		m := b.inv.Models
		a := b.post(t, modelPath, fmt.Sprintf(`{"modelIDs":[%d,999,%d]}`, m[0].ID, m[1].ID))
		if a.body["error_code"] != float64(500001) {
			t.Fatalf("partial=%v: %+v", partial, a)
		}
		if got := !b.fake.Exists(KindModel, m[0].ID); got != partial {
			t.Errorf("partial=%v: the ID before the bad one deleted = %v", partial, got)
		}
		if !b.fake.Exists(KindModel, m[1].ID) {
			t.Errorf("partial=%v: the ID after the bad one was deleted", partial)
		}
	}
}

func TestInUseAssumption(t *testing.T) {
	t.Parallel()
	inv := &Inventory{
		Models: []Model{
			{ID: 1, IDStr: "am-used", Versions: []Version{{ID: 11, IDStr: "amv-used"}, {ID: 12, IDStr: "amv-idle"}}},
			{ID: 2, IDStr: "am-idle", Versions: []Version{{ID: 21, IDStr: "amv-late"}}},
		},
		Services: []Service{{ID: 5, IDStr: "svco-1", Name: "s", Status: "Stopped", Model: "am-used", Version: "amv-used"}},
	}
	for _, refuse := range []bool{false, true} {
		fake := New(Config{Inventory: inv, Now: func() time.Time { return testNow },
			Assumptions: Assumptions{RefuseInUse: refuse}})
		srv := httptest.NewServer(fake)
		b := &invBundle{fake: fake, srv: srv}
		// A service deployed between a plan and its run.
		if err := fake.AddService(Service{ID: 6, IDStr: "svco-2", Name: "late", Status: "New"}); err != nil {
			t.Fatal(err)
		}
		if err := fake.SetServiceVersion("svco-2", "amv-late"); err != nil {
			t.Fatal(err)
		}
		v1 := b.post(t, pathVersions, `{"modelVersionIds":["amv-used"]}`)
		v2 := b.post(t, "/v2/model?Action=DeleteModelSet", `{"modelSetId":"am-idle"}`)
		idle := b.post(t, pathVersions, `{"modelVersionIds":[12]}`)
		if idle.body["error_code"] != nil {
			t.Errorf("refuse=%v: an idle version was refused: %+v", refuse, idle)
		}
		if refuse {
			if v1.body["error_code"] != float64(500001) || v2.status != 400 || v2.body["code"] != "InvalidParameter" {
				t.Errorf("refused deletes answered %+v and %+v", v1, v2)
			}
			if !fake.Exists(KindVersion, "amv-used") || !fake.Exists(KindModel, "am-idle") || fake.Stats().InUseDeletes != 0 {
				t.Error("an in-use model or version was deleted")
			}
		} else if fake.Exists(KindVersion, "amv-used") || fake.Exists(KindModel, 2) || fake.Stats().InUseDeletes != 2 {
			t.Errorf("allowed in-use deletes: stats %+v", fake.Stats())
		}
		srv.Close()
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestServiceListings(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 4, Versions: 2, Services: 3, Seed: 6}, Config{})
	v1 := b.post(t, "/wenxinworkshop/service/list", `{}`).result(t)
	custom := v1["custom"].([]any)
	if len(custom) != 3 || len(v1["common"].([]any)) == 0 {
		t.Fatalf("service/list %+v", v1)
	}
	ver := custom[0].(map[string]any)["versionList"].([]any)[0].(map[string]any)
	if _, isNum := ver["aiModelId"].(float64); !isNum {
		t.Errorf("aiModelId %v, want a number by default", ver["aiModelId"])
	}
	v2 := b.post(t, "/v2/service?Action=DescribeServices", `{"maxKeys":1}`).result(t)
	if len(v2["serviceList"].([]any)) != 1 || v2["pageInfo"].(map[string]any)["isTruncated"] != true {
		t.Errorf("DescribeServices %+v", v2)
	}
	first := v2["serviceList"].([]any)[0].(map[string]any)
	if !strings.HasPrefix(first["modelId"].(string), "amv-") || !strings.HasPrefix(first["modelSetId"].(string), "am-") {
		t.Errorf("service item %+v", first)
	}
	one := b.post(t, "/v2/service?Action=DescribeService", fmt.Sprintf(`{"serviceId":%q}`, first["serviceId"])).result(t)
	if one["serviceId"] != first["serviceId"] {
		t.Errorf("DescribeService %+v", one)
	}
	b.fake.SetAssumptions(Assumptions{V1ServiceIDsAsStrings: true, ServicesFlatPaging: true, ServicesListField: "services",
		V2ServiceModelIDIsSet: true})
	ver = b.post(t, "/wenxinworkshop/service/list", `{}`).result(t)["custom"].([]any)[0].(map[string]any)["versionList"].([]any)[0].(map[string]any)
	if _, isStr := ver["aiModelId"].(string); !isStr {
		t.Errorf("aiModelId %v, want a string", ver["aiModelId"])
	}
	flat := b.post(t, "/v2/service?Action=DescribeServices", `{"maxKeys":1}`).result(t)
	if len(flat["services"].([]any)) != 1 || flat["isTruncated"] != true || flat["pageInfo"] != nil {
		t.Errorf("flat DescribeServices %+v", flat)
	}
	if id := flat["services"].([]any)[0].(map[string]any)["modelId"].(string); !strings.HasPrefix(id, "am-") || strings.HasPrefix(id, "amv-") {
		t.Errorf("old-style modelId %q", id)
	}
}

func TestEndpointsSwitchOff(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 3, Seed: 7}, Config{V1OffAfter: 2})
	for i := range 2 {
		b.post(t, pathList, `{}`).result(t)
		_ = i
	}
	for _, path := range []string{pathList, modelPath} {
		if a := b.post(t, path, `{"modelIDs":[1]}`); a.status != 200 || a.body["error_code"] != float64(3) {
			t.Errorf("V1 after 2 calls: %+v", a)
		}
	}
	b.post(t, pathSets, `{}`).result(t) // V2 still serves
	b.fake.SetV2Off(true)
	if a := b.post(t, pathSets, `{}`); a.status != 404 || len(a.body) != 0 {
		t.Errorf("V2 off: %+v", a)
	}
	b.fake.SetV1Off(false)
	b.fake.SetV2Off(false)
	b.post(t, pathList, `{}`).result(t)
	b.post(t, pathSets, `{}`).result(t)
	if st := b.fake.Stats(); st.Calls[OutcomeGone] != 3 || st.Reads != 7 || st.Deletes != 1 {
		t.Errorf("stats %+v", st)
	}
	// Every gone form answers as configured.
	for name, form := range GoneForms() {
		b.fake.SetAssumptions(Assumptions{V1Gone: form})
		b.fake.SetV1Off(true)
		a := b.post(t, pathList, `{}`)
		if a.status != form.status() {
			t.Errorf("%s: status %d", name, a.status)
		}
	}
}

func TestKeysRevokeAndPermission(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 3, Seed: 8}, Config{})
	m := b.inv.Models
	b.fake.Revoke(DefaultAccessKey)
	if a := b.post(t, pathList, `{}`); a.status != 401 || a.gateway != "InvalidAccessKeyId" {
		t.Errorf("revoked: %+v", a)
	}
	b.fake.Restore(DefaultAccessKey)
	b.post(t, pathList, `{}`).result(t)
	b.fake.SetPermission(DefaultAccessKey, PermRead)
	b.post(t, pathList, `{}`).result(t)
	if a := b.post(t, modelPath, fmt.Sprintf(`{"modelIDs":[%d]}`, m[0].ID)); a.status != 403 || a.body["code"] != "AccessDenied" {
		t.Errorf("read-only delete: %+v", a)
	}
	b.fake.SetPermission(DefaultAccessKey, PermNone)
	if a := b.post(t, pathSets, `{}`); a.status != 403 {
		t.Errorf("no permission read: %+v", a)
	}
	if !b.fake.Exists(KindModel, m[0].ID) {
		t.Error("deleted without permission")
	}
	if st := b.fake.Stats(); st.Calls[OutcomeAuth] != 1 || st.Calls[OutcomeDenied] != 2 {
		t.Errorf("stats %+v", st.Calls)
	}
}

func TestControlEndpoints(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 2, Versions: 1, Seed: 9}, Config{})
	ctl := func(method, path, body string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	var dumped Inventory
	if err := json.NewDecoder(ctl("GET", "/_fake/inventory", "").Body).Decode(&dumped); err != nil || len(dumped.Models) != 2 {
		t.Fatalf("dump: %v %+v", err, dumped)
	}
	load := `{"models":[{"id":7,"idStr":"am-seven","name":"x","type":0,"createTime":"2025-01-01T00:00:00+08:00","versions":[]}],"services":[]}`
	if r := ctl("PUT", "/_fake/inventory", load); r.StatusCode != 204 {
		t.Fatalf("load: %d", r.StatusCode)
	}
	if !b.fake.Exists(KindModel, 7) || b.fake.Exists(KindModel, b.inv.Models[0].ID) {
		t.Error("loaded inventory not in force")
	}
	if r := ctl("PUT", "/_fake/inventory", `{"models":[{"id":0}]}`); r.StatusCode != 400 {
		t.Errorf("bad inventory: %d", r.StatusCode)
	}
	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/_fake/v1-off", 204}, {"/_fake/v2-off", 204}, {"/_fake/keys/revoke?access_key=x", 204},
		{"/_fake/keys/permission?access_key=x&level=read", 204}, {"/_fake/keys/permission?access_key=x&level=god", 400},
		{"/_fake/keys/restore", 400}, {"/_fake/nope", 404},
	} {
		if r := ctl("POST", tt.path, ""); r.StatusCode != tt.status {
			t.Errorf("POST %s: %d, want %d", tt.path, r.StatusCode, tt.status)
		}
	}
	if a := b.post(t, pathList, `{}`); a.body["error_code"] != float64(3) {
		t.Errorf("after /_fake/v1-off: %+v", a)
	}
	ctl("POST", "/_fake/v1-on", "")
	b.post(t, pathList, `{}`).result(t)
	if r := ctl("PUT", "/_fake/assumptions", `{"v1_max_page_size":1}`); r.StatusCode != 204 || b.fake.Assumptions().V1MaxPageSize != 1 {
		t.Errorf("PUT assumptions: %d", r.StatusCode)
	}
	if r := ctl("PUT", "/_fake/assumptions", `{"v1_max_pagesize":1}`); r.StatusCode != 400 {
		t.Errorf("misspelt assumption accepted: %d", r.StatusCode)
	}
	if r := ctl("GET", "/_fake/faults", ""); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET of a change endpoint: %d, want 405", r.StatusCode)
	}
	if r := ctl("POST", "/_fake/v1-off?after=x", ""); r.StatusCode != 400 {
		t.Errorf("v1-off?after=x: %d, want 400", r.StatusCode)
	}
	if st := b.fake.Stats(); st.Calls[OutcomeNotFound] != 0 {
		t.Errorf("control calls counted: %+v", st.Calls)
	}
}

func TestOpenWorldReadsAndV2Deletes(t *testing.T) {
	t.Parallel()
	fake := New(Config{Invalid: InvalidIDs("am-bad"), Now: func() time.Time { return testNow }})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	b := &invBundle{fake: fake, srv: srv}
	if a := b.post(t, pathList, `{}`); a.body["error_code"] == nil || a.body["result"] != nil {
		t.Errorf("open-world V1 list: %+v", a)
	}
	if a := b.post(t, pathSets, `{}`); a.status != 400 || a.body["result"] != nil {
		t.Errorf("open-world V2 list: %+v", a)
	}
	b.post(t, "/v2/model?Action=DeleteModelSet", `{"modelSetId":"am-ok"}`).result(t)
	for _, body := range []string{`{"modelSetId":"am-ok"}`, `{"modelSetId":"am-bad"}`} {
		if a := b.post(t, "/v2/model?Action=DeleteModelSet", body); a.status != 404 {
			t.Errorf("%s: %+v", body, a)
		}
	}
	if fake.DeleteCount(KindModel, "am-ok") != 1 || fake.Exists(KindModel, "am-ok") || !fake.Exists(KindModel, "am-new") ||
		fake.Exists(KindModel, "am-bad") || fake.Inventory() != nil {
		t.Error("open-world bookkeeping")
	}
}

func TestV1OffAfterCountsFromNow(t *testing.T) {
	b := setupInventory(t, Generate{Models: 3, Seed: 7}, Config{})
	for range 5 {
		b.post(t, "/wenxinworkshop/modelrepo/model/user/list", `{"pageNo":1,"pageSize":10}`).result(t)
	}
	resp, err := http.Post(b.srv.URL+"/_fake/v1-off?after=2", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("arming V1 off: %v %v", resp, err)
	}
	resp.Body.Close()
	for range 2 {
		b.post(t, "/wenxinworkshop/modelrepo/model/user/list", `{"pageNo":1,"pageSize":10}`).result(t)
	}
	if a := b.post(t, "/wenxinworkshop/modelrepo/model/user/list", `{"pageNo":1,"pageSize":10}`); a.status == 200 && a.body["error_code"] == nil {
		t.Errorf("the third V1 call after arming was served: %+v", a)
	}
}

// TestReadOnlyCredential: a second key held read-only lists but is refused
// on every delete, and the fake counts each key's calls apart.
func TestReadOnlyCredential(t *testing.T) {
	t.Parallel()
	const rak, rsk = "read-ak", "read-sk"
	b := setupInventory(t, Generate{Models: 3, Seed: 9}, Config{Credentials: map[string]string{DefaultAccessKey: DefaultSecretKey, rak: rsk}})
	b.fake.SetPermission(rak, PermRead)
	m := b.inv.Models
	asRead := func(path, body string) answer {
		return send(t, baiduSigned(t, b.srv.URL, path, body, rak, rsk, testNow, nil))
	}
	asRead(pathList, `{}`).result(t)
	asRead(pathSets, `{}`).result(t)
	for _, del := range []struct{ path, body string }{
		{modelPath, fmt.Sprintf(`{"modelIDs":[%d]}`, m[0].ID)},
		{"/v2/model?Action=DeleteModelSet", fmt.Sprintf(`{"modelSetId":%q}`, m[0].IDStr)},
	} {
		if a := asRead(del.path, del.body); a.status != 403 || a.body["code"] != "AccessDenied" {
			t.Errorf("read-only delete %s: %+v", del.path, a)
		}
	}
	if !b.fake.Exists(KindModel, m[0].ID) {
		t.Error("the read-only key deleted")
	}
	b.post(t, modelPath, fmt.Sprintf(`{"modelIDs":[%d]}`, m[1].ID)).result(t)
	st := b.fake.Stats()
	if diff := cmp.Diff(map[string]KeyCalls{rak: {Reads: 2, Deletes: 2, Denied: 2}, DefaultAccessKey: {Deletes: 1}}, st.Keys); diff != "" {
		t.Errorf("calls by key (-want +got):\n%s", diff)
	}
}

// TestQPSWindowPerKey: by default one window counts every key's calls;
// with QPSPerAccessKey each key has its own.
func TestQPSWindowPerKey(t *testing.T) {
	t.Parallel()
	const rak, rsk = "read-ak", "read-sk"
	for _, perKey := range []bool{false, true} {
		b := setupInventory(t, Generate{Models: 2, Seed: 9}, Config{QPS: 2, Credentials: map[string]string{DefaultAccessKey: DefaultSecretKey, rak: rsk},
			Assumptions: Assumptions{QPSPerAccessKey: perKey}})
		b.post(t, pathList, `{}`).result(t)
		b.post(t, pathList, `{}`).result(t)
		a := send(t, baiduSigned(t, b.srv.URL, pathList, `{}`, rak, rsk, testNow, nil))
		if throttled := a.body["error_code"] == float64(18); throttled == perKey {
			t.Errorf("per key %v: the other key's third call in the window answered %+v", perKey, a)
		}
		if a := b.post(t, pathList, `{}`); a.body["error_code"] != float64(18) {
			t.Errorf("per key %v: the first key's third call in the window answered %+v", perKey, a)
		}
	}
}
