// Command worker runs qfpurge's Asynq workers: it batches pending model
// deletions by kind and ID type and calls Qianfan's signed batchDelete.
//
// With no REDIS_URL it starts an in-memory Redis on 127.0.0.1:6379, so
// `go run ./cmd/worker --demo` works on a machine with nothing installed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/producer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		fmt.Fprintln(stderr, "worker:", err)
		return errUsage
	}
	level, _ := parseLevel(cfg.LogLevel)
	log := newLogger(stderr, cfg.LogFormat, level)

	var demo *demoEnv
	if cfg.Demo {
		if demo, err = startDemo(&cfg, log); err != nil {
			return err
		}
		defer demo.Close()
	}
	if err := cfg.validate(); err != nil {
		return err
	}

	rdb, closeRedis, err := openRedis(cfg, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis %s is not reachable: %w", redisconn.Redact(cfg.RedisURL), err)
	}
	log.Info("qfpurge worker starting", "config", cfg)

	insp := asynq.NewInspectorFromRedisClient(rdb)
	met := monitor.NewMetrics(rdb, insp, log.With("component", "metrics"))
	// --qps is a budget for the whole fleet sharing this Redis (see monitor.go).
	fleet, err := newFleetLimiter(rdb, cfg, met)
	if err != nil {
		return err
	}
	qc, err := qianfan.New(qianfan.Credentials{AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey},
		qianfan.WithBaseURL(cfg.BaseURL),
		qianfan.WithLimiter(fleet),
		qianfan.WithLogger(log.With("component", "qianfan")),
	)
	if err != nil {
		return err
	}
	opts := tasks.Options{MaxRetry: cfg.MaxRetry, Retention: cfg.Retention}
	ledger := ledger.New(rdb, ledger.Config{TTL: cfg.LedgerTTL, EventsMaxLen: cfg.EventsMaxLen})
	handler := tasks.NewHandler(tasks.QianfanDeleter{Client: qc}, asynq.NewClientFromRedisClient(rdb), ledger,
		tasks.HandlerConfig{BatchSize: cfg.BatchSize, Options: opts, Logger: log, VerdictWait: cfg.VerdictWait, Observer: met})

	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:      cfg.Concurrency,
		Queues:           map[string]int{asynqlayout.Queue: 1},
		GroupAggregator:  &tasks.Aggregator{Options: opts, Logger: log},
		GroupGracePeriod: cfg.BatchWait,
		GroupMaxDelay:    cfg.BatchMaxWait,
		GroupMaxSize:     cfg.GroupMaxSize,
		RetryDelayFunc:   tasks.RetryDelay,
		IsFailure:        tasks.IsFailure,
		ShutdownTimeout:  cfg.Shutdown,
		Logger:           asynqLogger{log.With("component", "asynq")},
		LogLevel:         asynqLevel(level),
	})
	prod, err := producer.New(rdb, producer.Config{BatchSize: cfg.BatchSize, MaxRetry: cfg.MaxRetry, Retention: cfg.Retention})
	if err != nil {
		return err
	}
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeDelete, handler)
	mux.Handle(tasks.TypeDeleteBatch, handler)
	registerSchedule(mux, rdb, prod, log)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		tasks.RunSweeper(sweepCtx, rdb, ledger, cfg.SweepEvery, log.With("component", "sweeper"))
	}()
	stopExtras, err := startExtras(cfg, deps{
		rdb: rdb, log: log, ledger: ledger, producer: prod, inspector: insp, metrics: met,
	})
	if err != nil {
		srv.Shutdown()
		stopSweep()
		return err
	}
	log.Info("qfpurge worker running", "queue", asynqlayout.Queue)
	if demo != nil {
		go demo.Run(ctx, rdb, cfg, stdout)
	}

	<-ctx.Done()
	log.Info("shutting down: finishing running batches", "timeout", cfg.Shutdown)
	stopExtras()
	srv.Shutdown()
	stopSweep()
	<-sweepDone
	log.Info("worker stopped")
	return nil
}

// openRedis connects to REDIS_URL, or starts the embedded in-memory Redis.
func openRedis(cfg config, log *slog.Logger) (redis.UniversalClient, func(), error) {
	if cfg.RedisURL != "" {
		rdb, err := redisconn.Open(cfg.RedisURL)
		if err != nil {
			return nil, nil, err
		}
		return rdb, func() { rdb.Close() }, nil
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(cfg.EmbeddedAddr); err != nil {
		return nil, nil, fmt.Errorf("start the embedded Redis on %s: %w (is a Redis already running there? then set REDIS_URL=redis://%s)",
			cfg.EmbeddedAddr, err, cfg.EmbeddedAddr)
	}
	// Asynq's heartbeats and leases rely on expiring keys.
	m.ClockTTL(true)
	log.Warn("NO REDIS_URL: using an embedded in-memory Redis on " + cfg.EmbeddedAddr +
		". Queued deletions are LOST when this worker stops. Set REDIS_URL for real use.")
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	return rdb, func() { rdb.Close(); m.Close() }, nil
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// asynqLogger adapts slog to Asynq's printf-style Logger.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }

func asynqLevel(l slog.Level) asynq.LogLevel {
	switch {
	case l <= slog.LevelDebug:
		return asynq.DebugLevel
	case l <= slog.LevelInfo:
		return asynq.InfoLevel
	case l <= slog.LevelWarn:
		return asynq.WarnLevel
	}
	return asynq.ErrorLevel
}
