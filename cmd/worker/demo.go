package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/fakeqianfan"
	"github.com/qfpurge/qfpurge/producer"
)

// demoBadID does not exist at the demo's fake Qianfan, so it is dead-lettered.
const demoBadID = 404404

// demoEnv is a fake Qianfan started for --demo.
type demoEnv struct {
	fake *fakeqianfan.Server
	srv  *http.Server
	log  *slog.Logger
}

func startDemo(cfg *config, log *slog.Logger) (*demoEnv, error) {
	fake := fakeqianfan.New(fakeqianfan.Config{
		Invalid: fakeqianfan.InvalidIDs(int64(demoBadID)),
		// A few transient failures so retries show in the log.
		Faults: fakeqianfan.Faults{Rate503: 0.25, Latency: 30 * time.Millisecond, Seed: 7},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	cfg.BaseURL = "http://" + ln.Addr().String()
	cfg.AccessKey, cfg.SecretKey = fakeqianfan.DefaultAccessKey, fakeqianfan.DefaultSecretKey
	log.Warn("DEMO: deleting against a fake Qianfan at " + cfg.BaseURL + ", not Baidu")
	return &demoEnv{fake: fake, srv: srv, log: log}, nil
}

func (d *demoEnv) Close() { d.srv.Close() }

// Run enqueues sample IDs as many small jobs, waits for the queue to drain
// and prints what happened.
func (d *demoEnv) Run(ctx context.Context, rdb redis.UniversalClient, cfg config, out io.Writer) {
	p, err := producer.New(rdb, producer.Config{BatchSize: cfg.BatchSize, Shards: 1})
	if err != nil {
		d.log.Error("demo", "err", err)
		return
	}
	var ids []producer.ID
	for n := int64(1001); n <= 1040; n++ {
		ids = append(ids, producer.IntID(n))
	}
	ids = append(ids, producer.IntID(demoBadID))
	for i := 1; i <= 10; i++ {
		ids = append(ids, producer.StringID(fmt.Sprintf("am-demo-%02d", i)))
	}
	for _, id := range ids { // one job each, as other systems would send them
		if _, err := p.Enqueue(ctx, producer.Request{Kind: producer.KindModel, IDs: []producer.ID{id}}); err != nil {
			d.log.Error("demo enqueue", "err", err)
			return
		}
	}
	fmt.Fprintf(out, "demo: enqueued %d single-ID jobs (40 int IDs, 10 string IDs, and %d, which does not exist)\n", len(ids), demoBadID)
	dead := deadletter.NewStore(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for ctx.Err() == nil {
		if dead, _ := dead.Count(ctx); dead > 0 && drained(insp) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	st := d.fake.Stats()
	fmt.Fprintf(out, "demo: fake Qianfan deleted %d IDs; calls by outcome: %v\n", st.IDsDeleted, st.Calls)
	dls, _ := dead.List(ctx, "", 10)
	for _, dl := range dls {
		fmt.Fprintf(out, "demo: dead letter: %s %s: %s\n", dl.Kind, dl.ID, dl.Reason())
	}
	fmt.Fprintln(out, "demo: done. Dead letters: go run ./cmd/dlq list. Stop with Ctrl-C.")
}

// drained reports whether nothing is waiting, running or grouped.
func drained(insp *asynq.Inspector) bool {
	q, err := insp.GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		return false
	}
	return q.Pending+q.Active+q.Scheduled+q.Retry+q.Aggregating == 0
}
