package workercmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker"
)

// demoBadID does not exist at the demo's fake Qianfan, so it is dead-lettered.
const demoBadID = 404404

// demoEnv is a fake Qianfan started for --demo.
type demoEnv struct {
	fake *qianfantest.Server
	srv  *http.Server
	log  *slog.Logger
}

// startDemo serves a fake Qianfan on a free loopback port and points cfg at it.
func startDemo(cfg *worker.Config) (*demoEnv, error) {
	fake := qianfantest.New(qianfantest.Config{
		// An account holding the demo's models (not its bad ID), so the
		// in-use check and the listings have something real to read.
		Inventory: demoInventory(),
		// A few transient failures so retries show in the log.
		Faults: qianfantest.Faults{Rate503: 0.25, Latency: 30 * time.Millisecond, Seed: 7},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	cfg.BaseURL = "http://" + ln.Addr().String()
	cfg.AccessKey, cfg.SecretKey = qianfantest.DefaultAccessKey, qianfantest.DefaultSecretKey
	cfg.SkipPreflight = true
	cfg.Logger.Warn("DEMO: deleting against a fake Qianfan at " + cfg.BaseURL + ", not Baidu")
	return &demoEnv{fake: fake, srv: srv, log: cfg.Logger}, nil
}

func (d *demoEnv) Close() { d.srv.Close() }

// Run enqueues sample IDs as many small jobs, waits for the queue to drain
// and prints what happened. redisAddr is the embedded Redis's address.
func (d *demoEnv) Run(ctx context.Context, w *worker.Worker, rdb redis.UniversalClient, redisAddr string, out io.Writer) {
	p, err := enqueue.New(rdb, enqueue.Config{Shards: 1})
	if err != nil {
		d.log.Error("demo", "err", err)
		return
	}
	var ids []modelid.ID
	for n := int64(1001); n <= 1040; n++ {
		ids = append(ids, modelid.IntID(n))
	}
	ids = append(ids, modelid.IntID(demoBadID))
	for i := 1; i <= 10; i++ {
		ids = append(ids, modelid.StringID(fmt.Sprintf("am-demo-%02d", i)))
	}
	for _, id := range ids { // one job each, as other systems would send them
		if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{id}}); err != nil {
			d.log.Error("demo enqueue", "err", err)
			return
		}
	}
	fmt.Fprintf(out, "demo: enqueued %d single-ID jobs (40 int IDs, 10 string IDs, and %d, which does not exist)\n", len(ids), demoBadID)
	if addr := w.MonitorAddr(); addr != "" {
		fmt.Fprintf(out, "demo: watch it in the monitor: http://%s/monitoring/\n", addr)
	}
	dead := deadletter.NewStore(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for ctx.Err() == nil {
		if n, _ := dead.Count(ctx); n > 0 && drained(insp) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	st := d.fake.Stats()
	fmt.Fprintf(out, "demo: the fake Qianfan deleted %s; its answers: %s\n", modelid.Plural(st.IDsDeleted, "ID", "IDs"), countList(st.Calls))
	dls, _ := dead.List(ctx, "", 10)
	for _, dl := range dls {
		fmt.Fprintf(out, "demo: dead letter: %s %s: %s\n", dl.Kind, dl.ID, dl.Reason())
	}
	fmt.Fprintf(out, "demo: done. In another terminal, while this runs: REDIS_URL=redis://%s go run ./cmd/qfpurge dlq list. Stop with Ctrl-C.\n", redisAddr)
}

// countList renders counts by outcome as "ok 6, 500001 6, 503 5", most first.
func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// drained reports whether nothing is waiting, running or grouped.
func drained(insp *asynq.Inspector) bool {
	q, err := insp.GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		return false
	}
	return q.Pending+q.Active+q.Scheduled+q.Retry+q.Aggregating == 0
}

// demoInventory is the demo account: models 1001-1040 and am-demo-01 to
// am-demo-10, each with its other ID form, no services.
func demoInventory() *qianfantest.Inventory {
	inv := &qianfantest.Inventory{}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for n := int64(1001); n <= 1040; n++ {
		inv.Models = append(inv.Models, qianfantest.Model{ID: n, IDStr: fmt.Sprintf("am-demo-i%d", n), Name: fmt.Sprintf("demo-%d", n), CreateTime: at})
	}
	for i := 1; i <= 10; i++ {
		inv.Models = append(inv.Models, qianfantest.Model{ID: int64(2000 + i), IDStr: fmt.Sprintf("am-demo-%02d", i), Name: fmt.Sprintf("demo-s%02d", i), CreateTime: at})
	}
	return inv
}
