package qianfan

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// recordBodies keeps the JSON body of every call to action.
func recordBodies(action string, into *[]map[string]any, mu *sync.Mutex) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("Action") == action {
				b, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(b))
				var m map[string]any
				_ = json.Unmarshal(b, &m)
				mu.Lock()
				*into = append(*into, m)
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestWalkServicesListsBothProtocolVersions(t *testing.T) {
	t.Parallel()
	var bodies []map[string]any
	var mu sync.Mutex
	b, inv := setupInventory(t, qianfantest.Generate{Models: 6, Versions: 2, Services: 13, Seed: 21},
		qianfantest.Config{}, recordBodies(ActionDescribeServices, &bodies, &mu))
	svcs, err := b.client.WalkServices(t.Context(), 3)
	if err != nil || len(svcs) != len(inv.Services) {
		t.Fatalf("walk: %d services, %v; want %d", len(svcs), err, len(inv.Services))
	}
	want := map[string]int{}
	for _, s := range inv.Services {
		want[s.IDStr] = max(s.ProtocolVersion, 1)
	}
	perVersion := map[int]int{}
	for _, s := range svcs {
		if want[s.ServiceID] != s.ProtocolVersion {
			t.Errorf("%s: protocol %d, want %d", s.ServiceID, s.ProtocolVersion, want[s.ServiceID])
		}
		perVersion[s.ProtocolVersion]++
	}
	if perVersion[1] == 0 || perVersion[2] == 0 {
		t.Fatalf("services per protocol version %v: the inventory should hold both", perVersion)
	}
	// Every request names its protocolVersion: Baidu's default (1) hides
	// the services that run today.
	mu.Lock()
	defer mu.Unlock()
	seen := map[float64]bool{}
	for _, body := range bodies {
		pv, ok := body["protocolVersion"].(float64)
		if !ok {
			t.Fatalf("a DescribeServices request without protocolVersion: %v", body)
		}
		seen[pv] = true
	}
	if !seen[1] || !seen[2] {
		t.Errorf("protocolVersion sent: %v; want 1 and 2", seen)
	}
}

func TestDescribeServicesDefaultsToProtocolV1(t *testing.T) {
	t.Parallel()
	b, inv := setupInventory(t, qianfantest.Generate{Models: 3, Versions: 1, Services: 4, Seed: 22}, qianfantest.Config{}, nil)
	for _, pv := range []int{0, 1, 2} {
		p, _, err := b.client.DescribeServices(t.Context(), ServicesRequest{ProtocolVersion: pv})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, s := range inv.Services {
			if max(s.ProtocolVersion, 1) == max(pv, 1) {
				want = append(want, s.IDStr)
			}
		}
		var got []string
		for _, s := range p.Services {
			got = append(got, s.ServiceID)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("protocolVersion %d: %v, want %v", pv, got, want)
		}
	}
	if _, _, err := b.client.DescribeServices(t.Context(), ServicesRequest{ProtocolVersion: 3}); err == nil {
		t.Error("protocolVersion 3 accepted")
	}
	// A server that ignores protocolVersion lists each service twice: the
	// walk keeps one of each.
	b.fake.SetAssumptions(qianfantest.Assumptions{ServicesIgnoreProtocolVersion: true})
	svcs, err := b.client.WalkServices(t.Context(), 0)
	if err != nil || len(svcs) != len(inv.Services) {
		t.Errorf("protocolVersion ignored: %d services, %v; want %d", len(svcs), err, len(inv.Services))
	}
}

func TestWalkServicesFailsPartWay(t *testing.T) {
	t.Parallel()
	inv := &qianfantest.Inventory{Models: []qianfantest.Model{{ID: 1, IDStr: "am-a", Name: "a", CreateTime: invNow,
		Versions: []qianfantest.Version{{ID: 2, IDStr: "amv-a", Version: 1, State: "Ready", CreateTime: invNow}}}}}
	for i := range 7 {
		inv.Services = append(inv.Services, qianfantest.Service{ID: int64(10 + i), IDStr: "svco-" + string(rune('a'+i)),
			Name: "s", Status: "Serving", Model: "am-a", Version: "amv-a", ProtocolVersion: 2})
	}
	b := setup(t, qianfantest.Config{Inventory: inv}, nil, WithMaxElapsed(0))
	b.fake.SetFaults(qianfantest.Faults{FailPages: map[string]int{ActionDescribeServices: 2}})
	svcs, err := b.client.WalkServices(t.Context(), 3)
	if err == nil || svcs != nil {
		t.Fatalf("walk failing at page 2: %d services, %v; want an error and nothing", len(svcs), err)
	}
	if b.fake.Stats().FailedPages == 0 {
		t.Error("the fault never struck")
	}
}

func TestWalkBatchInferenceTasks(t *testing.T) {
	t.Parallel()
	b, inv := setupInventory(t, qianfantest.Generate{Models: 5, Versions: 2, BatchTasks: 40, Seed: 23}, qianfantest.Config{}, nil, WithMaxElapsed(0))
	all, err := b.client.WalkBatchInferenceTasks(t.Context(), 7)
	if err != nil || len(all) != len(inv.BatchTasks) {
		t.Fatalf("walk: %d tasks, %v; want %d", len(all), err, len(inv.BatchTasks))
	}
	byID := map[string]qianfantest.BatchTask{}
	for _, task := range inv.BatchTasks {
		byID[task.ID] = task
	}
	for _, task := range all {
		w := byID[task.TaskID]
		if task.ModelID != w.Version || task.RunStatus != w.Status || task.Name != w.Name || !task.CreateTime.Equal(w.CreateTime) {
			t.Errorf("task %+v, want %+v", task, w)
		}
	}
	active, err := b.client.WalkBatchInferenceTasks(t.Context(), 7, TaskActiveStates...)
	if err != nil {
		t.Fatal(err)
	}
	wantActive := 0
	for _, task := range inv.BatchTasks {
		if slices.Contains(TaskActiveStates, task.Status) {
			wantActive++
		}
	}
	if len(active) != wantActive || wantActive == 0 || wantActive == len(all) {
		t.Fatalf("active: %d, want %d of %d", len(active), wantActive, len(all))
	}
	for _, task := range active {
		if !task.Active() {
			t.Errorf("filtered walk returned %s in %s", task.TaskID, task.RunStatus)
		}
	}
	b.fake.SetFaults(qianfantest.Faults{FailPages: map[string]int{ActionDescribeBatchInferenceTasks: 3}})
	if got, err := b.client.WalkBatchInferenceTasks(t.Context(), 7); err == nil || got != nil {
		t.Errorf("walk failing at page 3: %d tasks, %v; want an error and nothing", len(got), err)
	}
}
