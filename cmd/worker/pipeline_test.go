package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

// These tests run the built commands as a user would: processes, flags and
// the environment; the in-process pipeline tests are in internal/worker.

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds the worker and enqueue commands once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "qfpurge-bin")
		if binErr != nil {
			return
		}
		for _, c := range []string{"worker", "enqueue"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "github.com/qfpurge/qfpurge/cmd/"+c).CombinedOutput()
			if err != nil {
				binErr = fmt.Errorf("build %s: %v\n%s", c, err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

// command returns a command of bin with e's environment.
func command(e *workertest.Env, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env = append(os.Environ(), e.Environ()...)
	return cmd
}

// startProcess starts a worker process, stopped with SIGTERM at the end.
func startProcess(t *testing.T, e *workertest.Env, args ...string) *exec.Cmd {
	t.Helper()
	p := command(e, "worker", append(slices.Clone(workertest.FastFlags), args...)...)
	var log workertest.Log
	p.Stderr = &log
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
		if t.Failed() {
			t.Logf("worker process log:\n%s", log.String())
		}
	})
	return p
}

// leasesExpired reports whether no running task holds a live Asynq lease,
// so a worker started now recovers a killed worker's batches at once.
func leasesExpired(e *workertest.Env) bool {
	n, err := e.RDB.ZCount(context.Background(), asynqlayout.Lease(asynqlayout.Queue), fmt.Sprint(time.Now().Unix()), "+inf").Result()
	return err == nil && n == 0
}

func TestWorkerKilledMidwayLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("SIGKILL and Asynq's 30 s lease: over a minute")
	}
	t.Parallel()
	binaries(t)
	fc, ids, invalid := workertest.Account(1000, 500)
	fc.Faults = qianfantest.Faults{Latency: 20 * time.Millisecond, Rate503: 0.1, Seed: 3}
	e := workertest.New(t, fc)
	e.EnqueueMixed(t, ids)

	// A slow first worker (5 calls/s) so the kill lands mid-drain.
	first := command(e, "worker", append(slices.Clone(workertest.FastFlags), "--qps", "5")...)
	var firstLog workertest.Log
	first.Stderr = &firstLog
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	workertest.Eventually(t, 2*time.Minute, "200 deletions by the first worker", func() bool { return e.Fake.Stats().IDsDeleted >= 200 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killedAt := e.Fake.Stats().IDsDeleted
	t.Logf("SIGKILL after %d deletions", killedAt)

	// Asynq hands a dead worker's batches back once their lease has run out;
	// a worker started after that recovers them at once.
	workertest.Eventually(t, time.Minute, "the killed worker's leases to expire", func() bool { return leasesExpired(e) })
	startProcess(t, e)
	e.WaitSettled(t, ids, 4*time.Minute)
	e.CheckOutcomes(t, ids, invalid)
	if killedAt >= len(ids)-len(invalid) {
		t.Errorf("the kill came after every deletion (%d); the test proved nothing", killedAt)
	}
}

// TestEnqueueToSignedCallsBlackBox: four IDs from the enqueue command make
// exactly one delete call per ID type, and every request is signed as
// Baidu's own signer signs.
func TestEnqueueToSignedCallsBlackBox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the commands: a few seconds")
	}
	t.Parallel()
	binaries(t)
	var (
		mu    sync.Mutex
		calls []string
	)
	e := workertest.NewWithHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := verifyWithBaiduSigner(r, qianfantest.DefaultAccessKey, qianfantest.DefaultSecretKey)
		if err != nil {
			w.Header().Set("X-Bce-Error-Code", "SignatureDoesNotMatch")
			w.WriteHeader(http.StatusUnauthorized)
			t.Errorf("signature rejected: %v", err)
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/batchDelete") {
			// The detail calls before a small batch's first call: "not
			// found", so nothing is known to exist beforehand.
			fmt.Fprint(w, `{"log_id":"2443985831","error_code":500001,"error_msg":"param invalid"}`)
			return
		}
		mu.Lock()
		calls = append(calls, r.URL.Path+" "+string(body))
		mu.Unlock()
		fmt.Fprint(w, `{"log_id":"2443985832","result":{}}`)
	}))
	e.Start(t)
	// This stand-in answers deletes only: nothing can list what is in use,
	// so the request says delete_in_use, as a user of such an account would.
	out, err := command(e, "enqueue", "--delete-in-use", "585", "586", "am-a", "am-b").CombinedOutput()
	if err != nil {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "enqueued 4 model IDs (2 int, 2 string") {
		t.Errorf("enqueue said %q", out)
	}
	ids := []modelid.ID{modelid.IntID(585), modelid.IntID(586), modelid.StringID("am-a"), modelid.StringID("am-b")}
	e.WaitSettled(t, ids, 30*time.Second)
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{
		`/wenxinworkshop/modelrepo/model/batchDelete {"modelIDs":[585,586]}`:       true,
		`/wenxinworkshop/modelrepo/model/batchDelete {"modelIDs":["am-a","am-b"]}`: true,
	}
	if len(calls) != 2 {
		t.Fatalf("calls %q, want one signed call per ID type", calls)
	}
	for _, c := range calls {
		if !want[c] && !want[swapOrder(c)] {
			t.Errorf("unexpected call %q", c)
		}
	}
	recs, err := ledger.New(e.RDB, ledger.Config{}).LookupMany(context.Background(), modelid.KindModel, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.State != ledger.StateDeleted || r.LogID != "2443985832" {
			t.Errorf("ID %s: %+v, want deleted with the call's log_id", r.ID, r)
		}
	}
}

// swapOrder accepts a batch whose two IDs arrived in the other order:
// Asynq's aggregation does not keep order.
func swapOrder(call string) string {
	i, j := strings.Index(call, "["), strings.Index(call, "]")
	parts := strings.Split(call[i+1:j], ",")
	if len(parts) != 2 {
		return call
	}
	return call[:i+1] + parts[1] + "," + parts[0] + call[j:]
}

// TestBlackBoxThousandIDsBaiduVerified runs the 1,000-ID scenario as a user
// would: IDs in a file handed to the enqueue binary, a worker process, and a
// Qianfan whose every request must pass Baidu's own signer first.
func TestBlackBoxThousandIDsBaiduVerified(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the commands: about 10 s")
	}
	t.Parallel()
	binaries(t)
	// An account holding the valid IDs, so the in-use check can read it.
	fc, ids, invalid := workertest.Account(1000, 0)
	fc.Faults = qianfantest.Faults{Rate503: 0.08, Rate336100: 0.06, Rate500000: 0.06, Seed: 4}
	fake := qianfantest.New(fc)
	e := workertest.NewWithHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := verifyWithBaiduSigner(r, qianfantest.DefaultAccessKey, qianfantest.DefaultSecretKey)
		if err != nil {
			t.Errorf("Baidu's signer rejects the request: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		fake.ServeHTTP(w, r)
	}))
	e.Fake = fake

	// JSON lines keep each ID's type.
	var file bytes.Buffer
	for _, id := range ids {
		b, _ := json.Marshal(id)
		file.Write(append(b, '\n'))
	}
	path := filepath.Join(t.TempDir(), "ids.jsonl")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := command(e, "enqueue", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	ints := 0
	for _, id := range ids {
		if id.Type() == modelid.IDInt {
			ints++
		}
	}
	if !strings.Contains(string(out), fmt.Sprintf("enqueued 1000 model IDs (%d int, %d string", ints, 1000-ints)) {
		t.Errorf("enqueue said %q", out)
	}
	startProcess(t, e)
	e.WaitSettled(t, ids, 3*time.Minute)
	e.CheckOutcomes(t, ids, invalid)
}

// TestEnqueueCommandProtectsWhatIsInUse: a model a protocol-version-2
// service runs, enqueued with the enqueue command, is not deleted: it
// ends protected, naming the service; --delete-in-use deletes it and is
// recorded; --dry-run says so and deletes nothing.
func TestEnqueueCommandProtectsWhatIsInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the commands: a few seconds")
	}
	t.Parallel()
	binaries(t)
	inv := workertest.Models("am-served", "am-free")
	inv.Services = []qianfantest.Service{{ID: 1, IDStr: "svco-1", Name: "chat", Status: "Serving", Model: "am-served", ProtocolVersion: 2}}
	e := workertest.New(t, qianfantest.Config{Inventory: inv})
	startProcess(t, e)

	out, err := command(e, "enqueue", "--dry-run", "am-served", "am-free").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "protect it (in use)") || !strings.Contains(string(out), "chat") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if !e.Fake.Exists(qianfantest.KindModel, "am-served") || !e.Fake.Exists(qianfantest.KindModel, "am-free") {
		t.Fatal("the dry run deleted something")
	}
	if out, err := command(e, "enqueue", "--as", "ci-pipeline", "am-served", "am-free").CombinedOutput(); err != nil {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	ids := []modelid.ID{modelid.StringID("am-served"), modelid.StringID("am-free")}
	e.WaitSettled(t, ids, time.Minute)
	l := ledger.New(e.RDB, ledger.Config{})
	served, _, _ := l.Lookup(context.Background(), modelid.KindModel, ids[0])
	if served.State != ledger.StateProtected || !strings.Contains(served.Message, "chat") || served.RequestedBy != "ci-pipeline" {
		t.Errorf("served model: %+v; want protected, naming the service and who asked", served)
	}
	if free, _, _ := l.Lookup(context.Background(), modelid.KindModel, ids[1]); free.State != ledger.StateDeleted {
		t.Errorf("free model: %s, want deleted", free.State)
	}
	if out, err := command(e, "enqueue", "--delete-in-use", "am-served").CombinedOutput(); err != nil {
		t.Fatalf("enqueue --delete-in-use: %v\n%s", err, out)
	}
	workertest.Eventually(t, time.Minute, "the override deletes", func() bool {
		r, _, _ := l.Lookup(context.Background(), modelid.KindModel, ids[0])
		return r.State == ledger.StateDeleted && r.DeleteInUse
	})
}
