package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

// record reads one ID's ledger record.
func record(t *testing.T, e *workertest.Env, k modelid.Kind, id modelid.ID) ledger.Record {
	t.Helper()
	r, _, err := ledger.New(e.RDB, ledger.Config{}).Lookup(context.Background(), k, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitFinal(t *testing.T, e *workertest.Env, k modelid.Kind, ids ...modelid.ID) {
	t.Helper()
	waitFinalWithin(t, e, time.Minute, k, ids...)
}

// waitFinalWithin waits until every one of ids has a final state.
func waitFinalWithin(t *testing.T, e *workertest.Env, within time.Duration, k modelid.Kind, ids ...modelid.ID) {
	t.Helper()
	workertest.Eventually(t, within, fmt.Sprintf("%d IDs settled", len(ids)), func() bool {
		for _, st := range states(t, e, k, ids) {
			if !st.Final() {
				return false
			}
		}
		return true
	})
}

// TestInUseIsProtectedOnEveryPath: a model run by a service deployed with
// protocol version 2 (the kind that runs today, which a listing without
// protocolVersion does not return), a version a Stopped v1 service runs,
// and a version under a Running batch inference task are never deleted,
// whatever path asked: the Go producer, the HTTP API, a dead-letter
// requeue; the outcome is protected and names the user. An int ID is
// checked through its string form, learnt by a listing. A dry run names
// the service and deletes nothing; the per-request override deletes and
// is recorded. A service deployed after the view was read, 3 s before an
// enqueue, protects its model (the view is at most 2 s old).
func TestInUseIsProtectedOnEveryPath(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: several seconds")
	}
	t.Parallel()
	fc, _, _ := workertest.Account(12, 0)
	m := fc.Inventory.Models
	fc.Inventory.Services = []qianfantest.Service{
		{ID: 1, IDStr: "svco-chat", Name: "chat", Status: "Serving", Model: m[0].IDStr, Version: m[0].Versions[0].IDStr, ProtocolVersion: 2},
		{ID: 2, IDStr: "svco-old", Name: "old", Status: "Stopped", Model: m[1].IDStr, Version: m[1].Versions[0].IDStr, ProtocolVersion: 1},
	}
	e := workertest.New(t, fc)
	if err := e.Fake.AddBatchTask(qianfantest.BatchTask{ID: "infer-1", Name: "nightly", Version: m[2].Versions[0].IDStr, Status: "Running"}); err != nil {
		t.Fatal(err)
	}
	const token = "inuse-token-0123456789"
	w, _ := e.Start(t, func(c *worker.Config) {
		c.API = worker.APIConfig{Addr: "127.0.0.1:0", Tokens: []string{token}}
		c.VerifyWait = time.Second
	})
	api := apiClient{t: t, base: "http://" + w.APIAddr()}
	ctx := context.Background()
	p, err := enqueue.New(e.RDB, enqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}

	// The Go producer: the v2 service's model (string ID) and its int ID,
	// and a free model beside them.
	served, servedInt, free := modelid.StringID(m[0].IDStr), modelid.IntID(m[0].ID), modelid.StringID(m[5].IDStr)
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{served, free}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{servedInt}}); err != nil {
		t.Fatal(err)
	}
	waitFinal(t, e, modelid.KindModel, served, servedInt, free)
	for _, id := range []modelid.ID{served, servedInt} {
		r := record(t, e, modelid.KindModel, id)
		if r.State != ledger.StateProtected || !strings.Contains(r.Message, "chat") || !strings.Contains(r.Message, "protocol v2") {
			t.Errorf("%s: %s %q; want protected, naming the v2 service", id, r.State, r.Message)
		}
	}
	if st := record(t, e, modelid.KindModel, free).State; st != ledger.StateDeleted {
		t.Errorf("the free model: %s, want deleted (the rest of the batch goes on)", st)
	}

	// The HTTP API: the version a Stopped v1 service runs, and the version
	// under a running batch task.
	stopped, tasked := modelid.StringID(m[1].Versions[0].IDStr), modelid.StringID(m[2].Versions[0].IDStr)
	body := fmt.Sprintf(`{"kind":"version","model_ids":[%q,%q]}`, stopped, tasked)
	if code, _, b := api.call("POST", "/v1/deletions", token, body); code != http.StatusAccepted {
		t.Fatalf("POST /v1/deletions: %d %s", code, b)
	}
	waitFinal(t, e, modelid.KindVersion, stopped, tasked)
	if r := record(t, e, modelid.KindVersion, stopped); r.State != ledger.StateProtected || !strings.Contains(r.Message, "old") {
		t.Errorf("stopped service's version: %s %q", r.State, r.Message)
	}
	// Who asked is on the record: the API token's name (an unnamed token
	// is named by its place).
	if r := record(t, e, modelid.KindVersion, stopped); r.RequestedBy != "token-1" {
		t.Errorf("record of an API request: requested_by %q, want token-1", r.RequestedBy)
	}
	if r := record(t, e, modelid.KindVersion, tasked); r.State != ledger.StateProtected || !strings.Contains(r.Message, "nightly") {
		t.Errorf("running task's version: %s %q", r.State, r.Message)
	}

	// A dead-letter requeue goes through the same check.
	pipe := e.RDB.Pipeline()
	deadletter.Append(ctx, pipe, deadletter.Entry{Kind: modelid.KindModel, ID: modelid.StringID(m[1].IDStr), Code: 500001, Message: "param invalid", At: time.Now()})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, b := api.call("POST", "/v1/deadletters/requeue", token, `{"all":true}`); code != http.StatusOK {
		t.Fatalf("requeue: %d %s", code, b)
	}
	waitFinal(t, e, modelid.KindModel, modelid.StringID(m[1].IDStr))
	if r := record(t, e, modelid.KindModel, modelid.StringID(m[1].IDStr)); r.State != ledger.StateProtected {
		t.Errorf("requeued model a service runs: %s %q", r.State, r.Message)
	}

	// A dry run names the service and deletes nothing.
	code, _, b := api.call("POST", "/v1/deletions", token, fmt.Sprintf(`{"dry_run":true,"model_ids":[%q,%q]}`, m[3].IDStr, m[0].IDStr))
	var dr struct {
		Answers []struct {
			ID      string   `json:"id"`
			Outcome string   `json:"outcome"`
			Users   []string `json:"users"`
		} `json:"answers"`
	}
	if err := json.Unmarshal(b, &dr); code != http.StatusOK || err != nil || len(dr.Answers) != 2 {
		t.Fatalf("dry run: %d %s", code, b)
	}
	if dr.Answers[0].Outcome != "exists" || dr.Answers[1].Outcome != "in use" || !strings.Contains(strings.Join(dr.Answers[1].Users, ","), "chat") {
		t.Errorf("dry run answers %+v", dr.Answers)
	}
	if !e.Fake.Exists(qianfantest.KindModel, m[3].IDStr) {
		t.Error("the dry run deleted a model")
	}

	// A service deployed after the view was read, 3 s before the enqueue.
	if err := e.Fake.AddService(qianfantest.Service{ID: 9, IDStr: "svco-new", Name: "fresh", Status: "Deploying", Model: m[4].IDStr, ProtocolVersion: 2}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	fresh := modelid.StringID(m[4].IDStr)
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{fresh}}); err != nil {
		t.Fatal(err)
	}
	waitFinal(t, e, modelid.KindModel, fresh)
	if r := record(t, e, modelid.KindModel, fresh); r.State != ledger.StateProtected || !strings.Contains(r.Message, "fresh") {
		t.Errorf("model of a service deployed 3 s before: %s %q", r.State, r.Message)
	}

	// The override, for this request only, deletes and is recorded.
	if code, _, b := api.call("POST", "/v1/deletions", token, fmt.Sprintf(`{"delete_in_use":true,"model_ids":[%q]}`, m[4].IDStr)); code != http.StatusAccepted {
		t.Fatalf("override: %d %s", code, b)
	}
	workertest.Eventually(t, 60*time.Second, "the override deletes", func() bool {
		return record(t, e, modelid.KindModel, fresh).State == ledger.StateDeleted
	})
	if e.Fake.Exists(qianfantest.KindModel, m[4].IDStr) {
		t.Error("the override did not delete")
	}
	evs, err := e.RDB.XRevRangeN(ctx, ledger.EventStream, "+", "-", 50).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !overrideRecorded(evs, m[4].IDStr) {
		t.Error("no event records the override for the deleted model")
	}
	for _, id := range []any{m[0].IDStr, m[1].IDStr} {
		if !e.Fake.Exists(qianfantest.KindModel, id) {
			t.Errorf("%v, in use, was deleted", id)
		}
	}
}

func overrideRecorded(evs []redis.XMessage, id string) bool {
	for _, ev := range evs {
		if ev.Values["id"] == id && ev.Values["outcome"] == "deleted" && ev.Values["delete_in_use"] == "true" {
			return true
		}
	}
	return false
}

// TestScheduledIDsAreCheckedToo: a schedule's ids: entry goes through the
// same check; its entry is who asked.
func TestScheduledIDsAreCheckedToo(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: a few seconds")
	}
	t.Parallel()
	inv := workertest.Models("am-served", "am-free")
	inv.Services = []qianfantest.Service{{ID: 1, IDStr: "svco-1", Name: "chat", Status: "Stopped", Model: "am-served", ProtocolVersion: 2}}
	e := workertest.New(t, qianfantest.Config{Inventory: inv})
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	doc := "schedules:\n  - name: nightly\n    cron: \"@every 1s\"\n    kind: model\n    ids: [am-served, am-free]\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Start(t, func(c *worker.Config) { c.Schedule = path })
	served, free := modelid.StringID("am-served"), modelid.StringID("am-free")
	waitFinal(t, e, modelid.KindModel, served, free)
	if r := record(t, e, modelid.KindModel, served); r.State != ledger.StateProtected || !strings.Contains(r.Message, "chat") || r.RequestedBy != "schedule:nightly" {
		t.Errorf("scheduled model a service runs: %+v", r)
	}
	if r := record(t, e, modelid.KindModel, free); r.State != ledger.StateDeleted {
		t.Errorf("scheduled free model: %s", r.State)
	}
}

// TestCancelBeforeTheCall: a request cancelled by its key while its IDs
// wait (small jobs in a group, a ready batch in the queue, a delayed
// batch, a request given no key cancelled by the key generated for it) is
// never sent: each ID ends cancelled, with 0 deletions at the fake;
// another request is untouched.
func TestCancelBeforeTheCall(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: a few seconds")
	}
	t.Parallel()
	e := workertest.New(t, qianfantest.Config{Inventory: workertest.Models("am-g1", "am-g2", "am-q1", "am-q2", "am-q3", "am-d1", "am-n1", "am-n2", "am-other")})
	const token = "cancel-token-0123456789"
	ctx := context.Background()
	p, err := enqueue.New(e.RDB, enqueue.Config{BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	sid := func(ss ...string) []modelid.ID {
		var out []modelid.ID
		for _, s := range ss {
			out = append(out, modelid.StringID(s))
		}
		return out
	}
	reqs := []enqueue.Request{
		{Kind: modelid.KindModel, IDs: sid("am-g1", "am-g2"), Key: "grouped"},         // small jobs: a group
		{Kind: modelid.KindModel, IDs: sid("am-q1", "am-q2", "am-q3"), Key: "queued"}, // a full, ready batch
		{Kind: modelid.KindModel, IDs: sid("am-d1"), Key: "delayed", ProcessAt: time.Now().Add(2 * time.Second)},
		{Kind: modelid.KindModel, IDs: sid("am-other"), Key: "kept"},
	}
	for _, r := range reqs {
		if _, err := p.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	unkeyed, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: sid("am-n1", "am-n2")})
	if err != nil || !unkeyed.KeyGenerated {
		t.Fatalf("a request without a key: %+v, %v", unkeyed, err)
	}
	// Paused by hand, so no batch is called before the cancels land.
	ps := fleet.NewPauseStore(e.RDB)
	if _, err := ps.PauseManual(ctx, "test: cancel first"); err != nil {
		t.Fatal(err)
	}
	w, _ := e.Start(t, func(c *worker.Config) {
		c.API = worker.APIConfig{Addr: "127.0.0.1:0", Tokens: []string{"ops:" + token}}
	})
	api := apiClient{t: t, base: "http://" + w.APIAddr()}
	// The API for two, the ledger (as the CLI does) for the third.
	for _, key := range []string{"grouped", "queued", unkeyed.Key} {
		if code, _, b := api.call("DELETE", "/v1/requests/"+key, token, ""); code != http.StatusOK {
			t.Fatalf("cancel %s: %d %s", key, code, b)
		}
	}
	if _, err := ledger.New(e.RDB, ledger.Config{}).CancelRequest(ctx, "delayed", "operator"); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	all := sid("am-g1", "am-g2", "am-q1", "am-q2", "am-q3", "am-d1", "am-n1", "am-n2", "am-other")
	waitFinal(t, e, modelid.KindModel, all...)
	for _, id := range all[:8] {
		if r := record(t, e, modelid.KindModel, id); r.State != ledger.StateCancelled || !strings.Contains(r.Message, "cancelled by") {
			t.Errorf("%s: %s %q, want cancelled", id, r.State, r.Message)
		}
		if !e.Fake.Exists(qianfantest.KindModel, id.String()) {
			t.Errorf("%s was deleted although its request was cancelled", id)
		}
	}
	if r := record(t, e, modelid.KindModel, modelid.StringID("am-other")); r.State != ledger.StateDeleted {
		t.Errorf("another request's ID: %s, want deleted", r.State)
	}
	if n := e.Fake.Stats().IDsDeleted; n != 1 {
		t.Errorf("%d deletions at the fake, want 1 (only the request not cancelled)", n)
	}
}
