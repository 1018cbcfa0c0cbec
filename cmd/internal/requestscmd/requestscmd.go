// Package requestscmd is qfpurge's requests command: cancel a request by
// its key.
package requestscmd

import (
	"cmp"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/ledger"
)

// New returns the requests command reading the environment through getenv.
func New(getenv func(string) string) *cobra.Command {
	var redisURL, as string
	cmd := cli.Group(&cobra.Command{
		Use:   "requests COMMAND",
		Short: "Cancel a request of deletions by its key",
		Long: `Acts on requests of deletions by their key (enqueue --key, the API's key,
schedule:<entry>:<tick>, run:<run ID>).

Environment: REDIS_URL, required unless --redis-url is given.`,
	})
	cmd.PersistentFlags().StringVar(&redisURL, "redis-url", "", "Redis `URL` (default $REDIS_URL)")
	cancel := &cobra.Command{
		Use:   "cancel KEY",
		Short: "Cancel the request's IDs that no call has carried yet",
		Long: `Every ID of the request that no delete call has carried yet is taken out
of its batch when the batch comes up, wherever it waits (scheduled, in a
group, queued, retrying), and recorded cancelled. IDs already sent keep
their outcome (GET /v1/deletions/{id}, the events). Nobody else's work is
paused or touched.`,
		Args: cli.Args(func(args []string) error {
			if len(args) != 1 || args[0] == "" {
				return fmt.Errorf("cancel takes one request key")
			}
			return nil
		}),
		RunE: func(c *cobra.Command, args []string) error {
			rdb, err := cli.ConnectRedis(c.Context(), cmp.Or(redisURL, getenv("REDIS_URL")))
			if err != nil {
				return err
			}
			defer rdb.Close()
			first, err := ledger.New(rdb, ledger.Config{}).CancelRequest(c.Context(), args[0], cmp.Or(as, cli.WhoAmI()))
			if err != nil {
				return err
			}
			if !first {
				fmt.Fprintf(c.OutOrStdout(), "request %q was already cancelled\n", args[0])
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "request %q cancelled: its IDs not yet sent will be recorded cancelled when their batch comes up\n", args[0])
			return nil
		},
	}
	cancel.Flags().StringVar(&as, "as", "", "who cancels, recorded with the outcomes (default user@host)")
	cmd.AddCommand(cancel)
	return cmd
}
