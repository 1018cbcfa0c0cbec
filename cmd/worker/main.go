// Command worker runs qfpurge's Asynq workers: the same command as
// `qfpurge worker` (package cmd/internal/workercmd), as a binary of its own.
//
// `go run ./cmd/worker --demo` runs on an in-memory Redis against a fake
// Qianfan, on a machine with nothing but Go installed.
package main

import (
	"context"
	"os"

	"github.com/qfpurge/qfpurge/cmd/internal/workercmd"
	"github.com/qfpurge/qfpurge/internal/cli"
)

func main() {
	cli.Main("worker", func(ctx context.Context) error {
		return cli.Run(ctx, workercmd.New(os.Getenv), os.Args[1:])
	})
}
