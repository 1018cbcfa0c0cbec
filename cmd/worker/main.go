// Command worker runs qfpurge's Asynq workers: it batches pending model
// deletions by kind and ID type and calls Qianfan's signed batchDelete.
// Everything it runs is package internal/worker; this command only reads the
// flags and the environment, opens Redis and waits for a signal.
//
// `go run ./cmd/worker --demo` runs on an in-memory Redis against a fake
// Qianfan, on a machine with nothing but Go installed.
package main

import (
	"context"
	"io"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/worker"
)

func main() {
	cli.Main("worker", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := o.worker.Logger
	redisconn.RouteLogs(log.With("component", "redis"))
	var demo *demoEnv
	if o.demo {
		if demo, err = startDemo(&o.worker); err != nil {
			return err
		}
		defer demo.Close()
	}
	var (
		rdb        redis.UniversalClient
		embeddedAt string
	)
	if o.redisURL != "" {
		if rdb, err = redisconn.Connect(ctx, o.redisURL); err != nil {
			return err
		}
		defer rdb.Close()
	} else {
		var closeRedis func()
		if rdb, embeddedAt, closeRedis, err = redisconn.Embedded(o.embeddedAddr, log); err != nil {
			return err
		}
		defer closeRedis()
	}
	w, err := worker.New(rdb, o.worker)
	if err != nil {
		return cli.Usage(err)
	}
	if err := w.Start(); err != nil {
		return err
	}
	if demo != nil {
		go demo.Run(ctx, w, rdb, embeddedAt, stdout)
	}
	<-ctx.Done()
	log.Info("shutting down: finishing running batches", "timeout", o.worker.ShutdownTimeout)
	w.Shutdown()
	log.Info("worker stopped")
	return nil
}
