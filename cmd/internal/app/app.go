// Package app is the qfpurge command: one binary whose subcommands are the
// worker, enqueue, dlq, pause and rules commands, version and shell
// completion. cmd/qfpurge runs it; cmd/worker and cmd/enqueue run two of
// its subcommands as binaries of their own.
package app

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/qfpurge/qfpurge/cmd/internal/dlqcmd"
	"github.com/qfpurge/qfpurge/cmd/internal/enqueuecmd"
	"github.com/qfpurge/qfpurge/cmd/internal/pausecmd"
	"github.com/qfpurge/qfpurge/cmd/internal/requestscmd"
	"github.com/qfpurge/qfpurge/cmd/internal/rulescmd"
	"github.com/qfpurge/qfpurge/cmd/internal/workercmd"
	"github.com/qfpurge/qfpurge/internal/cli"
)

// New returns the qfpurge command reading the environment through getenv.
func New(getenv func(string) string) *cobra.Command {
	root := cli.Group(&cobra.Command{
		Use:   "qfpurge",
		Short: "Delete Baidu Qianfan models asynchronously, in bulk, safely",
		Long: `qfpurge deletes Baidu Qianfan models asynchronously, in bulk, safely: producers
enqueue deletions into Redis, workers batch them and call Qianfan's signed
delete endpoints, and what Qianfan refuses for good is dead-lettered.

Every command but version, completion and worker --demo needs REDIS_URL (or
--redis-url): none guesses a Redis.

Exit status: 0 done, 1 runtime failure, 2 bad usage or input.`,
	})
	root.AddCommand(
		workercmd.New(getenv),
		enqueuecmd.New(getenv),
		dlqcmd.New(getenv),
		pausecmd.New(getenv),
		rulescmd.New(getenv),
		requestscmd.New(getenv),
		versionCommand(),
		completionCommand(),
	)
	root.SetHelpCommand(helpCommand(root))
	return root
}

// helpCommand is cobra's help command, except that a command that does not
// exist is a usage error rather than the root's help.
func helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return cli.Usagef("no command %q (qfpurge help lists them)", strings.Join(args, " "))
			}
			target.SetOut(c.OutOrStdout())
			return target.Help()
		},
	}
}

// completionCommand writes cobra's completion script for a shell.
func completionCommand() *cobra.Command {
	gen := map[string]func(root *cobra.Command, w io.Writer) error{
		"bash":       func(r *cobra.Command, w io.Writer) error { return r.GenBashCompletionV2(w, true) },
		"zsh":        (*cobra.Command).GenZshCompletion,
		"fish":       func(r *cobra.Command, w io.Writer) error { return r.GenFishCompletion(w, true) },
		"powershell": (*cobra.Command).GenPowerShellCompletionWithDesc,
	}
	shells := slices.Sorted(maps.Keys(gen))
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script",
		Long: `Prints the completion script for a shell. To load it:
  bash   source <(qfpurge completion bash)       (needs bash-completion)
  zsh    qfpurge completion zsh > "${fpath[1]}/_qfpurge"
  fish   qfpurge completion fish > ~/.config/fish/completions/qfpurge.fish`,
		ValidArgs: shells,
		Args: cli.Args(func(args []string) error {
			if len(args) != 1 || gen[args[0]] == nil {
				return fmt.Errorf("completion takes one shell: %s", strings.Join(shells, ", "))
			}
			return nil
		}),
		RunE: func(c *cobra.Command, args []string) error { return gen[args[0]](c.Root(), c.OutOrStdout()) },
	}
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version, the VCS revision and time, and the Go version",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(c.OutOrStdout(), Version())
			return err
		},
	}
}

// revision and revisionTime are the VCS revision and its commit time as a
// build stamps them with -ldflags "-X", for builds where Go records no VCS
// information (-buildvcs=false, or no .git in the build context, as in the
// Dockerfile, which passes its QFPURGE_REVISION build argument here).
var revision, revisionTime string

// Version describes this build: the module version, the VCS revision and
// its time (and whether the tree had changes), and the Go version.
func Version() string {
	bi, _ := debug.ReadBuildInfo()
	return version(bi, revision, revisionTime)
}

// version renders bi's settings: the revision Go recorded comes first, the
// one the build stamped (rev, at) only when Go recorded none.
func version(bi *debug.BuildInfo, stampedRev, stampedAt string) string {
	v, rev, at, modified := "(devel)", "", "", ""
	if bi != nil {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
	}
	if rev == "" {
		rev, at = stampedRev, stampedAt
	}
	return fmt.Sprintf("qfpurge %s\nrevision %s%s\nbuilt from a tree of %s\n%s %s/%s\n",
		v, cmp.Or(rev, "unknown"), modified, cmp.Or(at, "unknown"), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
