package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/internal/worker"
)

// roleEnv selects a child role of this binary.
const roleEnv = "QFPURGE_BENCH_ROLE"

// The child roles.
const (
	roleFake     = "fake"           // the fake Qianfan
	roleNaive    = "naive-worker"   // one task and one call per ID
	roleDefaults = "asynq-defaults" // the pipeline with Asynq's default group settings
	roleMeasure  = "measure"        // runs a command and reports its peak RSS
)

// naiveType and naiveQueue are the naive worker's task type and queue.
const (
	naiveType  = "bench:naive-delete"
	naiveQueue = "bench-naive"
)

// naivePayload is one ID of the naive worker's tasks.
type naivePayload struct {
	ID modelid.ID `json:"id"`
}

func runRole(ctx context.Context, role string, args []string, stdout, stderr io.Writer) error {
	switch role {
	case roleFake:
		return runFake(ctx, args, stdout, stderr)
	case roleNaive, roleDefaults:
		return runBaselineWorker(ctx, role, args, stderr)
	case roleMeasure:
		return runMeasured(ctx, args, stdout, stderr)
	}
	return fmt.Errorf("unknown %s %q", roleEnv, role)
}

// maxRSSPrefix starts the line the measure role writes last on stderr.
const maxRSSPrefix = "bench-maxrss: "

// runMeasured runs args[0] with args[1:] and reports its peak RSS. Linux
// keeps the larger of the peak before and after exec, and a child starts
// as a copy of its parent: measured from the bench, which holds the whole
// inventory, the figure would be the bench's. This small process is the
// parent instead.
func runMeasured(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("measure: no command")
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	if cmd.ProcessState != nil {
		fmt.Fprintf(stderr, "%s%d\n", maxRSSPrefix, maxRSS(cmd.ProcessState))
	}
	return err
}

// countsRequest asks the fake wrapper for per-ID delete counts.
type countsRequest struct {
	Kind string   `json:"kind"`
	IDs  []string `json:"ids"` // "i:<n>" or "s:<text>"
}

func parseFakeID(s string) (any, error) {
	switch {
	case strings.HasPrefix(s, "i:"):
		return strconv.ParseInt(s[2:], 10, 64)
	case strings.HasPrefix(s, "s:"):
		return s[2:], nil
	}
	return nil, fmt.Errorf("fake ID %q: want i:<n> or s:<text>", s)
}

// fakeKey renders an ID the way the fake wrapper reads it.
func fakeKey(id modelid.ID) string {
	if n, ok := id.Int(); ok {
		return "i:" + strconv.FormatInt(n, 10)
	}
	return "s:" + id.String()
}

// runFake serves fakeqianfan on 127.0.0.1 until ctx is done, plus
// POST /_bench/counts (per-ID delete counts, which /_fake/stats lacks).
func runFake(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	qps := fs.Int("qps", 0, "calls per second cap; 0 for none")
	maxIDs := fs.Int("max-ids", 0, "longest list accepted; 0 for no limit")
	latency := fs.Duration("latency", 0, "latency of every call")
	invalidFile := fs.String("invalid-file", "", "file of IDs that do not exist, one per line as i:<n> or s:<text>")
	inventoryFile := fs.String("inventory", "", "JSON inventory the fake holds (inventory mode)")
	readKey := fs.Bool("read-key", false, "also accept the bench's read-only pair (benchReadAK), which lists but may not delete")
	qpsPerKey := fs.Bool("qps-per-key", false, "-qps caps each access key apart (Assumptions.QPSPerAccessKey); default one window for all calls")
	if err := fs.Parse(args); err != nil {
		return cli.Usage(err)
	}
	var invalid []any
	if *invalidFile != "" {
		b, err := os.ReadFile(*invalidFile)
		if err != nil {
			return err
		}
		for _, l := range strings.Fields(string(b)) {
			id, err := parseFakeID(l)
			if err != nil {
				return err
			}
			invalid = append(invalid, id)
		}
	}
	cfg := qianfantest.Config{QPS: *qps, MaxIDs: *maxIDs, Faults: qianfantest.Faults{Latency: *latency},
		Assumptions: qianfantest.Assumptions{QPSPerAccessKey: *qpsPerKey}}
	if *readKey {
		cfg.Credentials = map[string]string{qianfantest.DefaultAccessKey: qianfantest.DefaultSecretKey, benchReadAK: benchReadSK}
		cfg.Permissions = map[string]qianfantest.Permission{benchReadAK: qianfantest.PermRead}
	}
	if len(invalid) > 0 {
		cfg.Invalid = qianfantest.InvalidIDs(invalid...)
	}
	if *inventoryFile != "" {
		f, err := os.Open(*inventoryFile)
		if err != nil {
			return err
		}
		cfg.Inventory, err = qianfantest.ReadInventory(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	srv := qianfantest.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.HandleFunc("POST /_bench/counts", func(w http.ResponseWriter, r *http.Request) {
		var req countsRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := make([]int, len(req.IDs))
		for i, s := range req.IDs {
			id, err := parseFakeID(s)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			out[i] = srv.DeleteCount(req.Kind, id)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// runBaselineWorker runs one of the two baselines until ctx is done. Both
// benchReadAK and benchReadSK are the read-only pair of the protect
// scenario's read-pair drains.
const benchReadAK, benchReadSK = "bench-read-ak", "bench-read-sk"

// call Qianfan through the same signed client with the same QPS cap as the
// real worker; only what is batched, and how, differs.
func runBaselineWorker(ctx context.Context, role string, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis-url", "", "Redis URL")
	baseURL := fs.String("base-url", "", "fake Qianfan URL")
	qps := fs.Float64("qps", 20, "API calls per second")
	conc := fs.Int("concurrency", 10, "tasks processed at once")
	batch := fs.Int("batch-size", tasks.DefaultBatchSize, "most IDs per call (asynq-defaults only)")
	if err := fs.Parse(args); err != nil {
		return cli.Usage(err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rdb, err := redisconn.Connect(ctx, *redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if role == roleDefaults {
		// The real worker with Asynq's group defaults: a grace period of a
		// minute, no maximum delay, no maximum size.
		w, err := worker.New(rdb, worker.Config{
			AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey, BaseURL: *baseURL,
			QPS: *qps, Concurrency: *conc, BatchSize: *batch,
			BatchWait: time.Minute, BatchMaxWait: -1, GroupMaxSize: -1,
			Logger: log, LogLevel: slog.LevelWarn,
		})
		if err != nil {
			return err
		}
		if err := w.Start(); err != nil {
			return err
		}
		<-ctx.Done()
		w.Shutdown()
		return nil
	}
	qc, err := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
		qianfan.WithBaseURL(*baseURL), qianfan.WithQPS(*qps, 1))
	if err != nil {
		return err
	}
	mux := asynq.NewServeMux()
	mux.HandleFunc(naiveType, func(ctx context.Context, t *asynq.Task) error {
		var p naivePayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		_, err := tasks.QianfanDeleter{Client: qc}.Delete(ctx, modelid.KindModel, []modelid.ID{p.ID})
		return err
	})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: *conc, LogLevel: asynq.WarnLevel, Queues: map[string]int{naiveQueue: 1}})
	if err := srv.Start(mux); err != nil {
		return err
	}
	<-ctx.Done()
	srv.Shutdown()
	return nil
}
