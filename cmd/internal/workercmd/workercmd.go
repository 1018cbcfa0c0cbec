// Package workercmd is the worker command (qfpurge worker, cmd/worker): it
// resolves the flags, the environment and the config file, opens Redis and
// runs internal/worker until a signal. `worker --demo` runs on an in-memory
// Redis against a fake Qianfan, on a machine with nothing but Go installed.
package workercmd

import (
	"context"
	"io"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/worker"
)

// New returns the worker command reading the environment through getenv.
func New(getenv func(string) string) *cobra.Command {
	return newCommand(getenv, runWorker)
}

// newCommand returns the command that hands the resolved options to act.
func newCommand(getenv func(string) string, act func(ctx context.Context, o options, stdout io.Writer) error) *cobra.Command {
	var fl flags
	cmd := &cobra.Command{
		Use:   "worker [flags]",
		Short: "Run the workers: batch pending deletions and call Qianfan",
		Long:  usageHead,
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o, err := fl.resolve(c.Flags(), getenv, c.ErrOrStderr(), !fl.printConfig)
			if err != nil {
				return err
			}
			if fl.printConfig {
				return printConfig(c.OutOrStdout(), c.Flags(), getenv)
			}
			return act(c.Context(), o, c.OutOrStdout())
		},
	}
	fl.register(cmd.Flags())
	return cmd
}

func runWorker(ctx context.Context, o options, stdout io.Writer) error {
	log := o.worker.Logger
	redisconn.RouteLogs(log.With("component", "redis"))
	var (
		demo *demoEnv
		err  error
	)
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
