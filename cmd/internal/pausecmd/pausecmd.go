// Package pausecmd is the pause command (qfpurge pause): it shows and
// changes whether the qfpurge fleet's deletions are paused. Workers pause them by themselves when Qianfan refuses the
// credentials or the permission, and resume by themselves once a probe and
// one test call go through; an operator can also pause or lift it here.
//
//	pause status [--json]     whether deletions are paused, since when and why
//	pause lift                resume deletions now
//	pause set REASON...       pause deletions until lifted
//
// Exit status: 0 success, 1 runtime failure, 2 usage.
package pausecmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/ledger"
)

// New returns the pause command reading the environment through getenv.
func New(getenv func(string) string) *cobra.Command {
	var (
		redisURL string
		asJSON   bool
	)
	cmd := cli.Group(&cobra.Command{
		Use:   "pause COMMAND",
		Short: "See, set and lift the fleet's pause of deletions",
		Long: `Shows and changes whether the qfpurge fleet's deletions are paused. Workers
pause them by themselves when Qianfan refuses the credentials or the
permission, and resume by themselves once a probe and one test call go
through; an operator can also pause or lift it here.

Environment: REDIS_URL, required unless --redis-url is given.`,
	})
	cmd.PersistentFlags().StringVar(&redisURL, "redis-url", "", "Redis `URL` (default $REDIS_URL)")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print status as JSON")
	// sub adds a subcommand whose action gets the pause store and the event stream.
	sub := func(c *cobra.Command, act func(ctx context.Context, s *fleet.PauseStore, events *ledger.Ledger, args []string, stdout io.Writer) error) *cobra.Command {
		c.RunE = func(c *cobra.Command, args []string) error {
			rdb, err := cli.ConnectRedis(c.Context(), cmp.Or(redisURL, getenv("REDIS_URL")))
			if err != nil {
				return err
			}
			defer rdb.Close()
			return act(c.Context(), fleet.NewPauseStore(rdb), ledger.New(rdb, ledger.Config{}), args, c.OutOrStdout())
		}
		cmd.AddCommand(c)
		return c
	}
	sub(&cobra.Command{Use: "status", Short: "Whether the fleet's deletions are paused, since when and why", Args: cli.NoArgs},
		func(ctx context.Context, s *fleet.PauseStore, _ *ledger.Ledger, _ []string, stdout io.Writer) error {
			return status(ctx, s, asJSON, stdout)
		})
	sub(&cobra.Command{Use: "lift", Short: "Resume deletions now", Args: cli.NoArgs},
		func(ctx context.Context, s *fleet.PauseStore, events *ledger.Ledger, _ []string, stdout io.Writer) error {
			return lift(ctx, s, events, stdout)
		})
	sub(&cobra.Command{Use: "set REASON...", Short: "Pause deletions until lifted", Args: cli.Args(func(args []string) error {
		if len(args) == 0 {
			return errors.New("set needs a reason")
		}
		return nil
	})},
		func(ctx context.Context, s *fleet.PauseStore, events *ledger.Ledger, args []string, stdout io.Writer) error {
			return set(ctx, s, events, strings.Join(args, " "), stdout)
		})
	return cmd
}

func status(ctx context.Context, s *fleet.PauseStore, asJSON bool, stdout io.Writer) error {
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if st.State == fleet.Running {
			st.State = "running"
		}
		return json.NewEncoder(stdout).Encode(st)
	}
	if st.State == fleet.Running {
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

func lift(ctx context.Context, s *fleet.PauseStore, events *ledger.Ledger, stdout io.Writer) error {
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if st.State == fleet.Running {
		fmt.Fprintln(stdout, "deletions were not paused")
		return nil
	}
	if _, err := s.Resume(ctx); err != nil {
		return err
	}
	if err := events.FleetEvent(ctx, "resumed", "lifted by an operator (qfpurge pause lift)"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deletions resumed (were %s: %s)\n", st.State, st.Reason)
	return nil
}

func set(ctx context.Context, s *fleet.PauseStore, events *ledger.Ledger, why string, stdout io.Writer) error {
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
	fmt.Fprintln(stdout, "deletions paused until: qfpurge pause lift")
	return nil
}
