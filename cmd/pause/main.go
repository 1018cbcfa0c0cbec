// Command pause shows and changes whether the qfpurge fleet's deletions are
// paused. Workers pause them by themselves when Qianfan refuses the
// credentials or the permission, and resume by themselves once a probe and
// one test call go through; an operator can also pause or lift it here.
//
//	pause status [--json]     whether deletions are paused, since when and why
//	pause lift                resume deletions now
//	pause set REASON...       pause deletions until lifted
//
// Exit status: 0 success, 1 runtime failure, 2 usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/pause"
	"github.com/qfpurge/qfpurge/internal/redisconn"
)

func main() {
	// go-redis logs every failed dial; the error returned says it once.
	redisconn.Silence()
	cli.Main("pause", func(ctx context.Context) error {
		return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	})
}

const usage = `usage: pause [--redis-url URL] COMMAND

commands:
  status [--json]   whether the fleet's deletions are paused, since when and why
  lift              resume deletions now
  set REASON...     pause deletions until lifted

Redis comes from --redis-url or REDIS_URL.`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pause", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	redisURL := fs.String("redis-url", "", "Redis URL (env REDIS_URL)")
	asJSON := fs.Bool("json", false, "print status as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.Usage(err)
	}
	if *redisURL == "" {
		*redisURL = getenv("REDIS_URL")
	}
	if *redisURL == "" {
		return cli.Usagef("no Redis: set REDIS_URL or --redis-url")
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return cli.Usagef("no command given")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "status", "lift":
		// Flags may follow the command too: pause status --json.
		if err := fs.Parse(rest); err != nil {
			return cli.Usage(err)
		}
		if rest = fs.Args(); len(rest) > 0 {
			return cli.Usagef("%s takes no arguments", cmd)
		}
	case "set":
		if len(rest) == 0 {
			return cli.Usagef("set needs a reason")
		}
	default:
		return cli.Usagef("unknown command %q\n%s", cmd, usage)
	}
	rdb, err := cli.ConnectRedis(ctx, *redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	s := pause.NewStore(rdb)
	events := ledger.New(rdb, ledger.Config{})
	switch cmd {
	case "status":
		return status(ctx, s, *asJSON, stdout)
	case "lift":
		return lift(ctx, s, events, stdout)
	}
	return set(ctx, s, events, strings.Join(rest, " "), stdout)
}

func status(ctx context.Context, s *pause.Store, asJSON bool, stdout io.Writer) error {
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if st.State == pause.Running {
			st.State = "running"
		}
		return json.NewEncoder(stdout).Encode(st)
	}
	if st.State == pause.Running {
		fmt.Fprintln(stdout, "running: deletions are not paused")
		return nil
	}
	fmt.Fprintf(stdout, "%s since %s (%s ago): %s\n", st.State, st.Since.UTC().Format(time.RFC3339),
		time.Since(st.Since).Round(time.Second), st.Reason)
	if st.Tries > 0 {
		fmt.Fprintf(stdout, "%d test calls refused since\n", st.Tries)
	}
	return nil
}

func lift(ctx context.Context, s *pause.Store, events *ledger.Ledger, stdout io.Writer) error {
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if st.State == pause.Running {
		fmt.Fprintln(stdout, "deletions were not paused")
		return nil
	}
	if _, err := s.Resume(ctx); err != nil {
		return err
	}
	if err := events.FleetEvent(ctx, "resumed", "lifted by an operator (cmd/pause)"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deletions resumed (were %s: %s)\n", st.State, st.Reason)
	return nil
}

func set(ctx context.Context, s *pause.Store, events *ledger.Ledger, why string, stdout io.Writer) error {
	reason := "paused by an operator: " + why
	first, err := s.PauseManual(ctx, reason)
	if err != nil {
		return err
	}
	if !first {
		fmt.Fprintln(stdout, "deletions were already paused")
		return nil
	}
	if err := events.FleetEvent(ctx, "paused", reason); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "deletions paused until: pause lift")
	return nil
}
