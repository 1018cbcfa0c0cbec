// Command qfpurge is qfpurge in one binary: qfpurge worker, enqueue, dlq,
// pause, rules, version, completion and help (package cmd/internal/app).
//
//	go run ./cmd/qfpurge worker --demo
//	qfpurge enqueue 585 am-abc
//	qfpurge help dlq
package main

import (
	"context"
	"os"

	"github.com/qfpurge/qfpurge/cmd/internal/app"
	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/redisconn"
)

func main() {
	// go-redis logs every failed dial; the error returned says it once.
	// The worker routes them to its log instead.
	redisconn.Silence()
	cli.Main("qfpurge", func(ctx context.Context) error {
		return cli.Run(ctx, app.New(os.Getenv), os.Args[1:])
	})
}
