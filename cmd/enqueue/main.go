// Command enqueue hands Qianfan model deletions to qfpurge workers: the
// same command as `qfpurge enqueue` (package cmd/internal/enqueuecmd), as a
// binary of its own.
//
//	enqueue [flags] ID...
//	enqueue [flags] -f ids.txt
//
// Exit status: 0 enqueued, 1 runtime failure (e.g. Redis unreachable), 2 bad
// input or usage.
package main

import (
	"context"
	"os"

	"github.com/qfpurge/qfpurge/cmd/internal/enqueuecmd"
	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/redisconn"
)

func main() {
	// go-redis logs every failed dial; the error returned says it once.
	redisconn.Silence()
	cli.Main("enqueue", func(ctx context.Context) error {
		return cli.Run(ctx, enqueuecmd.New(os.Getenv), os.Args[1:])
	})
}
