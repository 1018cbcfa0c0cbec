package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

const readAK, readSK = "read-only-ak", "read-only-sk-must-not-leak"

// withReadPair adds a read-only key to the fake's account.
func withReadPair(fc qianfantest.Config) qianfantest.Config {
	fc.Credentials = map[string]string{qianfantest.DefaultAccessKey: qianfantest.DefaultSecretKey, readAK: readSK}
	fc.Permissions = map[string]qianfantest.Permission{readAK: qianfantest.PermRead}
	return fc
}

// checkKeys asserts what each key signed: the full key deletions only,
// the read pair reads only, and nothing refused.
func checkKeys(t *testing.T, e *workertest.Env) {
	t.Helper()
	st := e.Fake.Stats()
	full, read := st.Keys[qianfantest.DefaultAccessKey], st.Keys[readAK]
	if full.Reads != 0 || full.Deletes == 0 {
		t.Errorf("full key: %+v; want deletions only", full)
	}
	if read.Deletes != 0 || read.Reads == 0 || read.Denied != 0 {
		t.Errorf("read pair: %+v; want reads only", read)
	}
	if len(st.Keys) != 2 {
		t.Errorf("calls by keys %v; want the two pairs only", st.Keys)
	}
}

// TestReadPairSignsEveryReadV1: with a read-only pair, a V1 purge of int
// and string IDs with invalid ones among them (detail reads, bisection,
// the in-use view, a listing for evidence), a protected model and an API
// dry run sign every read with the read pair and every deletion with the
// full key; the outcomes are those of a worker with one key.
func TestReadPairSignsEveryReadV1(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: several seconds")
	}
	t.Parallel()
	fc, ids, invalid := workertest.Account(60, 5)
	m := fc.Inventory.Models
	fc.Inventory.Services = []qianfantest.Service{{ID: 1, IDStr: "svco-chat", Name: "chat", Status: "Serving", Model: m[60].IDStr, ProtocolVersion: 2}}
	e := workertest.New(t, withReadPair(fc))
	const token = "readkey-token-0123456789"
	w, log := e.Start(t, func(c *worker.Config) {
		c.ReadAccessKey, c.ReadSecretKey = readAK, readSK
		c.InventoryEvery = time.Hour
		c.API = worker.APIConfig{Addr: "127.0.0.1:0", Tokens: []string{token}}
	})
	e.EnqueueMixed(t, ids)
	e.WaitSettled(t, ids, 2*time.Minute)
	e.CheckOutcomes(t, ids, invalid)
	served := modelid.StringID(m[60].IDStr)
	p, err := enqueue.New(e.RDB, enqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{served}}); err != nil {
		t.Fatal(err)
	}
	waitFinal(t, e, modelid.KindModel, served)
	if r := record(t, e, modelid.KindModel, served); r.State != ledger.StateProtected {
		t.Errorf("served model: %s %q", r.State, r.Message)
	}
	api := apiClient{t: t, base: "http://" + w.APIAddr()}
	if code, _, b := api.call("POST", "/v1/deletions", token, fmt.Sprintf(`{"dry_run":true,"model_ids":[%q,%q]}`, m[61].IDStr, m[60].IDStr)); code != http.StatusOK {
		t.Fatalf("dry run: %d %s", code, b)
	}
	checkKeys(t, e)
	if strings.Contains(log.String(), readSK) {
		t.Error("the read pair's secret reached the log")
	}
}

// TestReadPairSignsEveryReadV2: the same through V2 (DeleteModelSet and
// DeleteModel, one ID per call).
func TestReadPairSignsEveryReadV2(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: a few seconds")
	}
	t.Parallel()
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: 12, Versions: 2, Seed: 7}, time.Now())
	e := workertest.New(t, withReadPair(qianfantest.Config{Inventory: inv}))
	e.Start(t, func(c *worker.Config) {
		c.ReadAccessKey, c.ReadSecretKey = readAK, readSK
		c.QianfanAPI = fleet.V2
	})
	p, err := enqueue.New(e.RDB, enqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var models, versions []modelid.ID
	for i, mm := range inv.Models {
		if i < 6 {
			models = append(models, modelid.StringID(mm.IDStr))
		} else {
			versions = append(versions, modelid.StringID(mm.Versions[0].IDStr))
		}
	}
	ctx := context.Background()
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: models}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindVersion, IDs: versions}); err != nil {
		t.Fatal(err)
	}
	waitFinal(t, e, modelid.KindModel, models...)
	waitFinal(t, e, modelid.KindVersion, versions...)
	for _, id := range models {
		if e.Fake.Exists(qianfantest.KindModel, id.String()) {
			t.Errorf("model %s not deleted", id)
		}
	}
	st := e.Fake.Stats()
	if st.Endpoints["/v2/model?Action=DeleteModelSet"] == 0 || st.Endpoints["/v2/model?Action=DeleteModel"] == 0 {
		t.Errorf("V2 deletes not used: %v", st.Endpoints)
	}
	checkKeys(t, e)
}

// TestRefusedReadPausesNamingTheReadKey: the read pair's key revoked, the
// in-use check's listing is refused; the fleet pauses, naming the read
// pair, and nothing is deleted.
func TestRefusedReadPausesNamingTheReadKey(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: a few seconds")
	}
	t.Parallel()
	e := workertest.New(t, withReadPair(qianfantest.Config{Inventory: workertest.Models("am-a", "am-b")}))
	e.Start(t, func(c *worker.Config) {
		c.ReadAccessKey, c.ReadSecretKey = readAK, readSK
	})
	e.Fake.Revoke(readAK)
	p, err := enqueue.New(e.RDB, enqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.StringID("am-a"), modelid.StringID("am-b")}}); err != nil {
		t.Fatal(err)
	}
	ps := fleet.NewPauseStore(e.RDB)
	var st fleet.PauseStatus
	workertest.Eventually(t, time.Minute, "the fleet pauses", func() bool {
		st, _ = ps.Status(context.Background())
		return st.State == fleet.Paused
	})
	if !strings.Contains(st.Reason, "QIANFAN_READ_ACCESS_KEY") || strings.Contains(st.Reason, readSK) {
		t.Errorf("pause reason %q; want it to name the read pair", st.Reason)
	}
	if n := e.Fake.Stats().Deletes; n != 0 {
		t.Errorf("%d delete calls while the reads were refused", n)
	}
}
