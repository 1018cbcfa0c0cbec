package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/fakeqianfan"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/producer"
)

// pipeEnv is a real redis-server and a fake Qianfan for end-to-end tests.
type pipeEnv struct {
	redis *redistest.Server
	rdb   *redis.Client
	fake  *fakeqianfan.Server
	url   string
}

func newPipeEnv(t *testing.T, fc fakeqianfan.Config) *pipeEnv {
	t.Helper()
	e := &pipeEnv{redis: redistest.Start(t)}
	e.rdb = e.redis.Client(t)
	e.fake = fakeqianfan.New(fc)
	srv := httptest.NewServer(e.fake)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *pipeEnv) env() map[string]string {
	return map[string]string{
		"REDIS_URL":          e.redis.URL(),
		"QIANFAN_ACCESS_KEY": fakeqianfan.DefaultAccessKey,
		"QIANFAN_SECRET_KEY": fakeqianfan.DefaultSecretKey,
		"QIANFAN_BASE_URL":   e.url,
	}
}

// pipeFastFlags keep tests quick: short aggregation waits, no QPS cap.
var pipeFastFlags = []string{"--batch-wait", "1s", "--batch-max-wait", "2s", "--qps", "0",
	"--verdict-wait", "1s", "--sweep-interval", "2s", "--shutdown-timeout", "5s", "--log-level", "warn",
	"--monitor-addr", ""}

// startWorker runs the worker in-process until the test ends.
func (e *pipeEnv) startWorker(t *testing.T, extra ...string) {
	t.Helper()
	env := e.env()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	var mu sync.Mutex
	go func() {
		done <- run(ctx, append(append([]string{}, pipeFastFlags...), extra...), func(k string) string { return env[k] },
			&lockedWriter{w: &logs, mu: &mu}, &lockedWriter{w: &logs, mu: &mu})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("worker logs:\n%s", logs.String())
			mu.Unlock()
		}
	})
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// pipeIDs returns n IDs, 60% int and 40% string, and the invalid ones among them.
func pipeIDs(n int) (all []producer.ID, invalid []producer.ID) {
	for i := 1; i <= n; i++ {
		if i%5 < 3 {
			all = append(all, producer.IntID(int64(i)))
		} else {
			all = append(all, producer.StringID(fmt.Sprintf("am-%05d", i)))
		}
	}
	for _, i := range []int{13, 300, 555, 704, 999} {
		invalid = append(invalid, all[i-1])
	}
	return all, invalid
}

func fakeID(id producer.ID) any {
	if n, ok := id.Int(); ok {
		return n
	}
	return id.String()
}

// enqueueMixed hands IDs over the way other systems do: one bulk request
// and many single-ID jobs from concurrent producers.
func (e *pipeEnv) enqueueMixed(t *testing.T, ids []producer.ID) {
	t.Helper()
	p, err := producer.New(e.rdb, producer.Config{Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	half := len(ids) / 2
	if _, err := p.Enqueue(ctx, producer.Request{Kind: producer.KindModel, IDs: ids[:half]}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := half + w; i < len(ids); i += 8 {
				if _, err := p.Enqueue(ctx, producer.Request{Kind: producer.KindModel, IDs: ids[i : i+1]}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// waitSettled polls until every ID has an outcome and the queue is empty.
func (e *pipeEnv) waitSettled(t *testing.T, ids []producer.ID, timeout time.Duration) {
	t.Helper()
	ledger := ledger.New(e.rdb, ledger.Config{})
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	deadline := time.Now().Add(timeout)
	ctx := context.Background()
	for {
		open := len(ids)
		if recs, err := ledger.LookupMany(ctx, modelid.KindModel, ids); err == nil {
			open = 0
			for _, r := range recs {
				if r.State == "" {
					open++
				}
			}
		}
		q, err := insp.GetQueueInfo(asynqlayout.Queue)
		busy := err != nil || q.Pending+q.Active+q.Scheduled+q.Retry+q.Aggregating > 0
		if open == 0 && !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled after %s: %d IDs without outcome, queue %+v (err %v)", timeout, open, q, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkOutcomes asserts the acceptance: every valid ID deleted exactly once
// at the fake and not dead; every invalid ID dead exactly once with 500001.
func (e *pipeEnv) checkOutcomes(t *testing.T, ids, invalid []producer.ID) {
	t.Helper()
	ctx := context.Background()
	bad := map[producer.ID]bool{}
	for _, id := range invalid {
		bad[id] = true
	}
	dls, err := deadletter.NewStore(e.rdb).List(ctx, "", 100_000)
	if err != nil {
		t.Fatal(err)
	}
	deadCount := map[producer.ID]int{}
	for _, d := range dls {
		deadCount[d.ID]++
		if !bad[d.ID] {
			t.Errorf("valid ID %s dead-lettered: %s", d.ID, d.Reason())
		}
		if d.Code != 500001 || d.LogID == "" {
			t.Errorf("dead letter %s has code %d log_id %q, want 500001 with a log_id", d.ID, d.Code, d.LogID)
		}
	}
	for _, id := range ids {
		if bad[id] {
			if deadCount[id] != 1 {
				t.Errorf("invalid ID %s dead-lettered %d times, want once", id, deadCount[id])
			}
			if n := e.fake.DeleteCount(fakeqianfan.KindModel, fakeID(id)); n != 0 {
				t.Errorf("invalid ID %s deleted %d times", id, n)
			}
			continue
		}
		if n := e.fake.DeleteCount(fakeqianfan.KindModel, fakeID(id)); n != 1 {
			t.Errorf("valid ID %s deleted %d times at the fake, want 1", id, n)
		}
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	q, err := insp.GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if q.Archived != len(invalid) {
		t.Errorf("%d archived tasks, want one per invalid ID (%d)", q.Archived, len(invalid))
	}
	if st := e.fake.Stats(); st.IDsDeleted != len(ids)-len(invalid) {
		t.Errorf("fake deleted %d IDs, want %d", st.IDsDeleted, len(ids)-len(invalid))
	}
}

func TestPipeline1000IDs(t *testing.T) {
	t.Parallel()
	ids, invalid := pipeIDs(1000)
	tests := []struct {
		name   string
		faults fakeqianfan.Faults
	}{
		{"20% transient faults", fakeqianfan.Faults{Rate503: 0.08, Rate336100: 0.06, Rate500000: 0.06, Seed: 1}},
		{"20% dropped responses", fakeqianfan.Faults{RateDropAfterDelete: 0.2, Seed: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newPipeEnv(t, fakeqianfan.Config{Invalid: fakeqianfan.InvalidIDs(fakeIDs(invalid)...), Faults: tt.faults})
			e.enqueueMixed(t, ids)
			e.startWorker(t)
			e.waitSettled(t, ids, 3*time.Minute)
			e.checkOutcomes(t, ids, invalid)
			t.Logf("fake stats: %+v", e.fake.Stats())
		})
	}
}

func fakeIDs(ids []producer.ID) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = fakeID(id)
	}
	return out
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// pipeBinaries builds the worker and enqueue commands once per test run.
func pipeBinaries(t *testing.T) string {
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

func (e *pipeEnv) command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range e.env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

func TestWorkerKilledMidwayLosesNothing(t *testing.T) {
	t.Parallel()
	bin := pipeBinaries(t)
	ids, invalid := pipeIDs(1000)
	e := newPipeEnv(t, fakeqianfan.Config{
		Invalid: fakeqianfan.InvalidIDs(fakeIDs(invalid)...),
		Faults:  fakeqianfan.Faults{Latency: 20 * time.Millisecond, Rate503: 0.1, Seed: 3},
	})
	e.enqueueMixed(t, ids)

	// A slow first worker (5 calls/s) so the kill lands mid-drain.
	args := append(append([]string{}, pipeFastFlags...), "--qps", "5")
	first := e.command(filepath.Join(bin, "worker"), args...)
	var firstLog bytes.Buffer
	first.Stderr = &firstLog
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for e.fake.Stats().IDsDeleted < 200 {
		if time.Now().After(deadline) {
			_ = first.Process.Kill()
			t.Fatalf("first worker deleted %d IDs in 2 minutes; log:\n%s", e.fake.Stats().IDsDeleted, firstLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killedAt := e.fake.Stats().IDsDeleted
	t.Logf("SIGKILL after %d deletions", killedAt)

	// Asynq hands a dead worker's batches back once their 30s lease has run
	// out (leases are extended every few seconds, so allow some more); a worker
	// started after that recovers them at once.
	time.Sleep(36 * time.Second)
	second := e.command(filepath.Join(bin, "worker"), pipeFastFlags...)
	var secondLog bytes.Buffer
	second.Stderr = &secondLog
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
		if t.Failed() {
			t.Logf("second worker log:\n%s", secondLog.String())
		}
	})
	e.waitSettled(t, ids, 4*time.Minute)
	e.checkOutcomes(t, ids, invalid)
	if killedAt >= len(ids)-len(invalid) {
		t.Errorf("the kill came after every deletion (%d); the test proved nothing", killedAt)
	}
}

// baiduVerifier accepts a request only if Baidu's own signer, given the same
// timestamp, expiry and signed headers, produces the same Authorization.
func TestEnqueueToSignedCallsBlackBox(t *testing.T) {
	t.Parallel()
	bin := pipeBinaries(t)
	var (
		mu    sync.Mutex
		calls []string
	)
	verifier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := verifyWithBaiduSigner(r, fakeqianfan.DefaultAccessKey, fakeqianfan.DefaultSecretKey)
		if err != nil {
			w.Header().Set("X-Bce-Error-Code", "SignatureDoesNotMatch")
			w.WriteHeader(http.StatusUnauthorized)
			t.Errorf("signature rejected: %v", err)
			return
		}
		mu.Lock()
		calls = append(calls, r.URL.Path+" "+string(body))
		mu.Unlock()
		fmt.Fprint(w, `{"log_id":"2443985832","result":{}}`)
	}))
	t.Cleanup(verifier.Close)
	e := &pipeEnv{redis: redistest.Start(t), url: verifier.URL}
	e.rdb = e.redis.Client(t)
	e.startWorker(t)

	out, err := e.command(filepath.Join(bin, "enqueue"), "585", "586", "am-a", "am-b").CombinedOutput()
	if err != nil {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "enqueued 4 model IDs (2 int, 2 string") {
		t.Errorf("enqueue said %q", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // any stray extra call would arrive by now
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
	t.Parallel()
	bin := pipeBinaries(t)
	ids, invalid := pipeIDs(1000)
	fake := fakeqianfan.New(fakeqianfan.Config{
		Invalid: fakeqianfan.InvalidIDs(fakeIDs(invalid)...),
		Faults:  fakeqianfan.Faults{Rate503: 0.08, Rate336100: 0.06, Rate500000: 0.06, Seed: 4},
	})
	verifier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := verifyWithBaiduSigner(r, fakeqianfan.DefaultAccessKey, fakeqianfan.DefaultSecretKey)
		if err != nil {
			t.Errorf("Baidu's signer rejects the request: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(verifier.Close)
	e := &pipeEnv{redis: redistest.Start(t), fake: fake, url: verifier.URL}
	e.rdb = e.redis.Client(t)

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
	out, err := e.command(filepath.Join(bin, "enqueue"), "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "enqueued 1000 model IDs (600 int, 400 string") {
		t.Errorf("enqueue said %q", out)
	}

	worker := e.command(filepath.Join(bin, "worker"), pipeFastFlags...)
	var log bytes.Buffer
	worker.Stderr = &log
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = worker.Process.Signal(syscall.SIGTERM)
		_ = worker.Wait()
		if t.Failed() {
			t.Logf("worker log:\n%s", log.String())
		}
	})
	e.waitSettled(t, ids, 3*time.Minute)
	e.checkOutcomes(t, ids, invalid)
}
