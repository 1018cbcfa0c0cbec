package qianfantest

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func TestServicesByProtocolVersion(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 2, Versions: 1, Services: 5, Seed: 30}, Config{})
	count := func(body string) int {
		return len(b.post(t, "/v2/service?Action=DescribeServices", body).result(t)["serviceList"].([]any))
	}
	// Generate makes services 0, 2, 4 protocolVersion 1 and 1, 3 protocolVersion 2.
	if n := count(`{}`); n != 3 {
		t.Errorf("without protocolVersion: %d services, want the 3 of version 1", n)
	}
	if n := count(`{"protocolVersion":1}`); n != 3 {
		t.Errorf("protocolVersion 1: %d, want 3", n)
	}
	if n := count(`{"protocolVersion":2}`); n != 2 {
		t.Errorf("protocolVersion 2: %d, want 2", n)
	}
	if a := b.post(t, "/v2/service?Action=DescribeServices", `{"protocolVersion":3}`); a.status != http.StatusBadRequest {
		t.Errorf("protocolVersion 3: %+v", a)
	}
	b.fake.SetAssumptions(Assumptions{ServicesIgnoreProtocolVersion: true})
	if n := count(`{"protocolVersion":2}`); n != 5 {
		t.Errorf("protocolVersion ignored: %d, want all 5", n)
	}
}

func TestBatchTasks(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 2, Versions: 2, Seed: 31}, Config{})
	v := b.inv.Models[0].Versions[0]
	for _, task := range []BatchTask{
		{ID: "infer-a", Name: "run", Status: "Running", Version: v.IDStr, CreateTime: testNow},
		{ID: "infer-b", Name: "done", Status: "Done", Version: v.IDStr, CreateTime: testNow},
		{ID: "infer-c", Name: "preset", Status: "Queuing", CreateTime: testNow},
	} {
		if err := b.fake.AddBatchTask(task); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.fake.AddBatchTask(BatchTask{ID: "infer-x", Status: "Running", Version: "amv-nope"}); err == nil {
		t.Error("a task on an unknown version was added")
	}
	if err := b.fake.AddBatchTask(BatchTask{ID: "infer-y", Status: "Sleeping"}); err == nil {
		t.Error("a task in an unknown state was added")
	}
	list := func(body string) []any {
		return b.post(t, "/v2/batchinference?Action=DescribeBatchInferenceTasks", body).result(t)["taskList"].([]any)
	}
	all := list(`{"maxKeys":2}`)
	if len(all) != 2 || all[0].(map[string]any)["taskId"] != "infer-a" || all[0].(map[string]any)["modelId"] != v.IDStr {
		t.Errorf("first page %+v", all)
	}
	if rest := list(`{"marker":"infer-c"}`); len(rest) != 1 {
		t.Errorf("from marker infer-c: %+v", rest)
	}
	if active := list(`{"runStatus":["Queuing","Running","Stopping"]}`); len(active) != 2 {
		t.Errorf("active: %+v", active)
	}
	// Over HTTP: a task added, then moved to Done.
	post := func(path, body string) int {
		resp, err := http.Post(b.srv.URL+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post("/_fake/batch-tasks", `{"id":"infer-d","name":"d","status":"Stopping","version":"`+v.IDStr+`"}`); st != http.StatusNoContent {
		t.Fatalf("add over HTTP: %d", st)
	}
	if st := post("/_fake/batch-tasks/status?id=infer-d&status=Done", ``); st != http.StatusNoContent {
		t.Fatalf("status over HTTP: %d", st)
	}
	if st := post("/_fake/batch-tasks/status?id=infer-zz&status=Done", ``); st != http.StatusBadRequest {
		t.Errorf("unknown task: %d", st)
	}
	if got := b.fake.Inventory().BatchTasks; len(got) != 4 || got[3].Status != "Done" {
		t.Errorf("tasks %+v", got)
	}
	// A running task makes its version and model in use for RefuseInUse.
	b.fake.SetAssumptions(Assumptions{RefuseInUse: true})
	if a := b.post(t, "/v2/model?Action=DeleteModel", `{"modelId":"`+v.IDStr+`"}`); a.status != http.StatusBadRequest {
		t.Errorf("deleting a version a running task reads: %+v", a)
	}
	if err := b.fake.SetBatchTaskStatus("infer-a", "Failed"); err != nil {
		t.Fatal(err)
	}
	if a := b.post(t, "/v2/model?Action=DeleteModel", `{"modelId":"`+v.IDStr+`"}`); a.status != http.StatusOK {
		t.Errorf("deleting a version whose tasks ended: %+v", a)
	}
}

func TestFailPages(t *testing.T) {
	t.Parallel()
	b := setupInventory(t, Generate{Models: 5, Versions: 1, BatchTasks: 5, Seed: 32}, Config{})
	b.fake.SetFaults(Faults{FailPages: map[string]int{"DescribeCustomModelSets": 2}})
	first := b.post(t, "/v2/model?Action=DescribeCustomModelSets", `{"maxKeys":2}`).result(t)
	next := first["pageInfo"].(map[string]any)["nextMarker"].(string)
	a := b.post(t, "/v2/model?Action=DescribeCustomModelSets", `{"maxKeys":2,"marker":"`+next+`"}`)
	if a.status != http.StatusInternalServerError || !strings.Contains(a.body["code"].(string), "InternalError") {
		t.Errorf("page 2: %+v", a)
	}
	// Other listings are untouched.
	if n := len(b.post(t, "/v2/batchinference?Action=DescribeBatchInferenceTasks", `{"maxKeys":2,"marker":"infer-"}`).result(t)["taskList"].([]any)); n != 2 {
		t.Errorf("tasks: %d", n)
	}
	if b.fake.Stats().FailedPages != 1 {
		t.Errorf("stats %+v", b.fake.Stats())
	}
}
