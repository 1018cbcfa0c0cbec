package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	edlib "github.com/hbollon/go-edlib"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Run executes cmd with args under ctx with the commands' conventions
// (see Prepare); its error maps to an exit status through Status.
func Run(ctx context.Context, cmd *cobra.Command, args []string) error {
	Prepare(cmd)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// Prepare makes cmd a command that prints its error once (through Status,
// not cobra), shows no usage after a runtime failure, and answers a
// mistyped flag with one line naming the nearest one.
func Prepare(cmd *cobra.Command) {
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	cmd.SetFlagErrorFunc(flagError)
}

// Group makes cmd a command that only holds subcommands: given none, it
// shows its help on stderr and is a usage error; given an unknown one, it
// names the nearest.
func Group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			c.SetOut(c.ErrOrStderr())
			_ = c.Help()
			return Usagef("no command given")
		}
		var names []string
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				names = append(names, sub.Name())
			}
		}
		if n := Nearest(args[0], names); n != "" {
			return Usagef("unknown command %q for %q; did you mean %q?", args[0], c.CommandPath(), n)
		}
		return Usagef("unknown command %q for %q (%s --help lists them)", args[0], c.CommandPath(), c.CommandPath())
	}
	return cmd
}

// Args checks a command's positional arguments, as a usage error.
func Args(check func(args []string) error) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error { return Usage(check(args)) }
}

// NoArgs refuses any positional argument.
var NoArgs = Args(func(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
})

// flagError turns pflag's errors into usage errors, and an unknown flag
// into one line naming the nearest known one.
func flagError(c *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return Usage(err)
	}
	if ne.GetSpecifiedShortnames() == "" {
		name := ne.GetSpecifiedName()
		return Usagef("unknown flag --%s%s", name, suggestFlag(c.Flags(), name))
	}
	// -qps: a long name written with one dash, as Go's flag package allows.
	name, _, _ := strings.Cut(ne.GetSpecifiedShortnames(), "=")
	if f := c.Flags().Lookup(name); f != nil {
		return Usagef("unknown flag -%s; did you mean --%s?", name, name)
	}
	return Usagef("unknown flag -%s%s", name, suggestFlag(c.Flags(), name))
}

// suggestFlag returns "; did you mean --NAME?" for the flag of fs nearest
// to typed, or a pointer to --help when none is near.
func suggestFlag(fs *pflag.FlagSet, typed string) string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	if n := Nearest(typed, names); n != "" {
		return "; did you mean --" + n + "?"
	}
	return " (--help lists the flags)"
}

// Nearest returns the candidate closest to typed: within two edits (a
// swap of neighbours counts as one) and at most one per two letters typed,
// or else the only candidate typed begins; "" when none is that close.
func Nearest(typed string, candidates []string) string {
	best, bestD := "", min(2, len(typed)/2)+1
	var prefixed []string
	for _, c := range candidates {
		if d := edlib.OSADamerauLevenshteinDistance(typed, c); d < bestD {
			best, bestD = c, d
		}
		if typed != "" && strings.HasPrefix(c, typed) {
			prefixed = append(prefixed, c)
		}
	}
	if best == "" && len(prefixed) == 1 {
		return prefixed[0]
	}
	return best
}

// RunIO is Run with the command's standard input and outputs given (nil
// keeps the process's).
func RunIO(ctx context.Context, cmd *cobra.Command, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if stdin != nil {
		cmd.SetIn(stdin)
	}
	if stdout != nil {
		cmd.SetOut(stdout)
	}
	if stderr != nil {
		cmd.SetErr(stderr)
	}
	return Run(ctx, cmd, args)
}
