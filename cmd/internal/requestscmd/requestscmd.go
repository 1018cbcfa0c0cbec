// Package requestscmd is qfpurge's requests command: show a request by its
// key, and cancel one by its key or IDs by themselves.
package requestscmd

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// New returns the requests command reading the environment through getenv.
func New(getenv func(string) string) *cobra.Command {
	var redisURL string
	cmd := cli.Group(&cobra.Command{
		Use:   "requests COMMAND",
		Short: "Follow a request of deletions by its key, or cancel it (or single IDs)",
		Long: `Acts on requests of deletions by their key (enqueue --key, the API's key,
schedule:<entry>:<tick>, run:<run ID>, or the req-<time>-<random> key
generated for a request given none and printed in its receipt), or on
single IDs.

Environment: REDIS_URL, required unless --redis-url is given.`,
	})
	cmd.PersistentFlags().StringVar(&redisURL, "redis-url", "", "Redis `URL` (default $REDIS_URL)")
	url := func() string { return cmp.Or(redisURL, getenv("REDIS_URL")) }
	cmd.AddCommand(showCmd(url), cancelCmd(url))
	return cmd
}

func showCmd(url func() string) *cobra.Command {
	var asJSON bool
	var list int
	show := &cobra.Command{
		Use:   "show KEY",
		Short: "Who asked, when, and how many of the request's IDs are in each state",
		Long: `Shows a request by its key: who asked (requested_by), when, its kind and the
time it asked for, whether it was cancelled, and how many of its IDs are
pending, deleted, presumed, dead, protected, cancelled or refused. An ID's
state is its ledger record's; one recorded by another request before this
one was made counts pending (this request has not reached it yet), unless
it was deleted. --ids N lists up to N IDs of each state.

A request given no key gets one (req-<time>-<random>), printed by enqueue
and returned by the API; records are kept 30 days.`,
		Args: cli.Args(func(args []string) error {
			if len(args) != 1 || args[0] == "" {
				return errors.New("show takes one request key")
			}
			return nil
		}),
		RunE: func(c *cobra.Command, args []string) error {
			if list < 0 || list > 10_000 {
				return cli.Usagef("--ids %d: want 0 to 10000", list)
			}
			rdb, err := cli.ConnectRedis(c.Context(), url())
			if err != nil {
				return err
			}
			defer rdb.Close()
			st, err := enqueue.ReadRequest(c.Context(), rdb, ledger.New(rdb, ledger.Config{}), args[0], list)
			if errors.Is(err, enqueue.ErrNoRequest) {
				return fmt.Errorf("request %q: %w (requests are recorded for 30 days, under the key their receipt shows)", args[0], err)
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(c.OutOrStdout(), st)
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON (as GET /v1/requests/{key} answers)")
	show.Flags().IntVar(&list, "ids", 0, "list up to `N` IDs of each state")
	return show
}

// printStatus writes st as a table.
func printStatus(w io.Writer, st enqueue.RequestStatus) {
	tw := cli.NewTable(w)
	if st.KeyGenerated {
		fmt.Fprintf(tw, "request\t%s (key generated)\n", st.Key)
	} else {
		fmt.Fprintf(tw, "request\t%s\n", st.Key)
	}
	fmt.Fprintf(tw, "requested by\t%s\n", cmp.Or(st.RequestedBy, "(not named)"))
	fmt.Fprintf(tw, "at\t%s\n", st.At.Format(time.RFC3339))
	fmt.Fprintf(tw, "kind\t%s\n", st.Kind)
	if !st.ProcessAt.IsZero() {
		fmt.Fprintf(tw, "process at\t%s\n", st.ProcessAt.Format(time.RFC3339))
	}
	if st.Run != "" {
		fmt.Fprintf(tw, "run\t%s\n", st.Run)
	}
	if st.CancelledBy != "" {
		fmt.Fprintf(tw, "cancelled by\t%s\n", st.CancelledBy)
	}
	fmt.Fprintf(tw, "IDs\t%d\n", st.IDs)
	fmt.Fprintln(tw, "\t")
	fmt.Fprintln(tw, "STATE\tIDS")
	for _, s := range enqueue.RequestStates {
		fmt.Fprintf(tw, "%s\t%d\n", s, st.States[string(s)])
	}
	tw.Flush()
	if st.ByState == nil {
		return
	}
	for _, s := range enqueue.RequestStates {
		ids := st.ByState[string(s)]
		if len(ids) == 0 {
			continue
		}
		strs := make([]string, len(ids))
		for i, id := range ids {
			strs[i] = id.String()
		}
		fmt.Fprintf(w, "\n%s: %s\n", s, strings.Join(strs, " "))
	}
	if st.Truncated {
		fmt.Fprintln(w, "\n(some states hold more IDs than --ids lists)")
	}
}

func cancelCmd(url func() string) *cobra.Command {
	var as, kind string
	var byID bool
	cancel := &cobra.Command{
		Use:   "cancel KEY | cancel --id ID...",
		Short: "Cancel a request's IDs (or single IDs) that no call has carried yet",
		Long: `With a KEY: every ID of the request that no delete call has carried yet is
taken out of its batch when the batch comes up, wherever it waits
(scheduled, in a group, queued, retrying), and recorded cancelled. IDs
already sent keep their outcome; the request's counts after the cancel
are shown (requests show KEY follows it).

With --id: the IDs given are cancelled the same way, whatever request
holds them; an ID that already has an outcome (deleted, dead, protected,
...) was sent or settled before, and is reported as such. An ID cancelled
but waiting nowhere stays marked for the ledger's TTL (30 days): enqueued
again within it, it ends cancelled too.

Nobody else's work is paused or touched.`,
		Example: `  qfpurge requests cancel nightly-2026-12-07
  qfpurge requests cancel --id 585 am-gn7t7xxf
  qfpurge requests cancel --id --kind version amv-irrrsmxabb6r`,
		Args: cli.Args(func(args []string) error {
			switch {
			case len(args) == 0:
				return errors.New("cancel takes one request key, or --id and the IDs")
			case !byID && len(args) != 1:
				return errors.New("cancel takes one request key; to cancel IDs, say --id")
			}
			return nil
		}),
		RunE: func(c *cobra.Command, args []string) error {
			var k modelid.Kind
			var ids []modelid.ID
			if byID {
				var err error
				if k, err = modelid.ParseKind(kind); err != nil {
					return cli.Usage(err)
				}
				for _, a := range args {
					id, err := modelid.ParseID(a)
					if err == nil {
						err = id.ValidateFor(k)
					}
					if err != nil {
						return cli.Usagef("ID %q: %v", a, err)
					}
					ids = append(ids, id)
				}
				ids = modelid.Dedupe(ids)
			} else if kind != string(modelid.KindModel) {
				return cli.Usagef("--kind goes with --id")
			}
			rdb, err := cli.ConnectRedis(c.Context(), url())
			if err != nil {
				return err
			}
			defer rdb.Close()
			l := ledger.New(rdb, ledger.Config{})
			who := cmp.Or(as, cli.WhoAmI())
			out := c.OutOrStdout()
			if byID {
				got, err := l.CancelIDs(c.Context(), k, ids, who)
				if err != nil {
					return err
				}
				for _, g := range got {
					if g.Marked {
						note := ""
						if g.State == "" {
							note = " (the ledger holds nothing of it yet: if no batch holds it, the mark lapses after 30 days)"
						}
						fmt.Fprintf(out, "%s %s: cancelled: it will be recorded cancelled when its batch comes up, before any call%s\n", k, g.ID, note)
						continue
					}
					fmt.Fprintf(out, "%s %s: already %s (sent or settled before the cancel); nothing changed\n", k, g.ID, g.State)
				}
				return nil
			}
			first, err := l.CancelRequest(c.Context(), args[0], who)
			if err != nil {
				return err
			}
			if !first {
				fmt.Fprintf(out, "request %q was already cancelled\n", args[0])
			} else {
				fmt.Fprintf(out, "request %q cancelled: its IDs not yet sent will be recorded cancelled when their batch comes up\n", args[0])
			}
			if st, err := enqueue.ReadRequest(c.Context(), rdb, l, args[0], 0); err == nil {
				fmt.Fprintln(out)
				printStatus(out, st)
			}
			return nil
		},
	}
	cancel.Flags().StringVar(&as, "as", "", "who cancels, recorded with the outcomes (default user@host)")
	cancel.Flags().BoolVar(&byID, "id", false, "the arguments are IDs to cancel, not a request key")
	cancel.Flags().StringVar(&kind, "kind", string(modelid.KindModel), "with --id: the IDs' `kind`, model or version")
	return cancel
}
