package app

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/qfpurge/qfpurge/internal/cli"
)

// qfpurge runs the command in-process with env as its environment and
// returns its output and exit status.
func qfpurge(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cli.RunIO(context.Background(), New(func(k string) string { return env[k] }), args, strings.NewReader(""), &out, &errb)
	code = cli.Status("qfpurge", err, &errb)
	return out.String(), errb.String(), code
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/qfpurge once, with VCS stamping on, as a release would.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "qfpurge-app")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "qfpurge")
		out, err := exec.Command("go", "build", "-buildvcs=true", "-o", binPath, "github.com/qfpurge/qfpurge/cmd/qfpurge").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, binPath)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" && buildErr == nil {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// TestVersion: the built binary names the commit it was built from, the
// commit's time and the Go version.
func TestVersion(t *testing.T) {
	if _, _, code := qfpurge(t, nil, "version", "extra"); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
	out, err := exec.Command(binary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "qfpurge ") {
		t.Fatalf("version printed:\n%s", out)
	}
	if !strings.Contains(lines[3], runtime.Version()) {
		t.Errorf("no Go version %s in %q", runtime.Version(), lines[3])
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no git to compare the revision with: %v", err)
	}
	top, _ := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if st, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !st.IsDir() {
		// go build stamps a revision only where .git is a directory, not
		// in a worktree, whose .git is a file.
		t.Skipf("not a plain git clone: go build records no revision here (%s)", strings.TrimSpace(lines[1]))
	}
	if want := "revision " + strings.TrimSpace(string(head)); !strings.HasPrefix(lines[1], want) {
		t.Errorf("%q, want %q", lines[1], want)
	}
	if strings.Contains(lines[2], "unknown") {
		t.Errorf("no commit time: %q", lines[2])
	}
}

// TestVersionFallback: the revision Go records wins; a revision stamped
// with -ldflags -X is shown only when Go recorded none; else "unknown".
func TestVersionFallback(t *testing.T) {
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "aaaa"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	novcs := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{{Key: "-buildvcs", Value: "false"}}}
	for _, tc := range []struct {
		name          string
		bi            *debug.BuildInfo
		rev, at       string
		wantRev, when string
	}{
		{"recorded wins over stamped", vcs, "bbbb", "2025-01-01T00:00:00Z", "revision aaaa (modified)", "built from a tree of 2026-01-02T03:04:05Z"},
		{"recorded alone", vcs, "", "", "revision aaaa (modified)", "built from a tree of 2026-01-02T03:04:05Z"},
		{"stamped when none recorded", novcs, "bbbb", "2025-01-01T00:00:00Z", "revision bbbb", "built from a tree of 2025-01-01T00:00:00Z"},
		{"stamped without a time", novcs, "bbbb", "", "revision bbbb", "built from a tree of unknown"},
		{"no build info, stamped", nil, "bbbb", "", "revision bbbb", "built from a tree of unknown"},
		{"neither", novcs, "", "", "revision unknown", "built from a tree of unknown"},
	} {
		lines := strings.Split(version(tc.bi, tc.rev, tc.at), "\n")
		if len(lines) != 5 || lines[1] != tc.wantRev || lines[2] != tc.when {
			t.Errorf("%s: %q, want %q and %q", tc.name, lines, tc.wantRev, tc.when)
		}
	}
}

// dockerRevisionX is the Dockerfile's -X stamping of its QFPURGE_REVISION
// build argument.
var dockerRevisionX = regexp.MustCompile(`-X ([^ "=]+)=\$\{QFPURGE_REVISION\}`)

// TestVersionStampedInDocker: built as the Dockerfile builds it, without
// VCS information, the binary shows the revision its build argument
// stamped; the symbol the Dockerfile names is the one Version reads.
func TestVersionStampedInDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	df, err := os.ReadFile("../../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := dockerRevisionX.FindSubmatch(df)
	if m == nil {
		t.Fatal("the Dockerfile does not stamp ${QFPURGE_REVISION} with -ldflags -X")
	}
	bin := filepath.Join(t.TempDir(), "qfpurge")
	const rev = "0123456789abcdef0123456789abcdef01234567"
	build := exec.Command("go", "build", "-buildvcs=false", "-trimpath", "-ldflags=-s -w -X "+string(m[1])+"="+rev,
		"-o", bin, "github.com/qfpurge/qfpurge/cmd/qfpurge")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "\nrevision "+rev+"\n") {
		t.Errorf("version printed:\n%s\nwant revision %s", out, rev)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		out, _, code := qfpurge(t, nil, args...)
		if code != 0 {
			t.Errorf("%q: exit %d", args, code)
		}
		for _, sub := range []string{"worker", "enqueue", "dlq", "pause", "rules", "version", "completion"} {
			if !strings.Contains(out, "\n  "+sub+" ") {
				t.Errorf("%q does not list %s:\n%s", args, sub, out)
			}
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "dlq"}, "requeue"},
		{[]string{"dlq", "list", "-h"}, "--after ENTRY"},
		{[]string{"worker", "--help"}, "QFPURGE_<FLAG>"},
		{[]string{"rules", "runs", "--help"}, "--offset"},
		{[]string{"pause", "-h"}, "lift"},
	} {
		out, _, code := qfpurge(t, nil, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, want 0 and %q in:\n%s", tc.args, code, tc.want, out)
		}
	}
	if _, errOut, code := qfpurge(t, nil, "help", "dlq", "nope"); code != 2 || !strings.Contains(errOut, `no command "dlq nope"`) {
		t.Errorf("help of a command that does not exist: exit %d, %s", code, errOut)
	}
	// Without a subcommand: the help on stderr, and a usage error.
	for _, args := range [][]string{nil, {"dlq"}, {"pause"}, {"rules"}} {
		out, errOut, code := qfpurge(t, nil, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "Available Commands:") || !strings.HasSuffix(errOut, "qfpurge: no command given\n") {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s", args, code, out, errOut)
		}
	}
}

// TestCompletion: each shell's script is written, and parses in that
// shell where it is installed.
func TestCompletion(t *testing.T) {
	for _, tc := range []struct{ shell, marker string }{
		{"bash", "complete -o default -F __start_qfpurge qfpurge"},
		{"zsh", "#compdef qfpurge"},
		{"fish", "complete -c qfpurge"},
	} {
		t.Run(tc.shell, func(t *testing.T) {
			out, errOut, code := qfpurge(t, nil, "completion", tc.shell)
			if code != 0 || !strings.Contains(out, tc.marker) {
				t.Fatalf("exit %d, %s; output lacks %q:\n%.300s", code, errOut, tc.marker, out)
			}
			sh, err := exec.LookPath(tc.shell)
			if err != nil {
				t.Skipf("%s is not installed: the script is not parsed", tc.shell)
			}
			f := filepath.Join(t.TempDir(), "qfpurge."+tc.shell)
			if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			if msg, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", tc.shell, err, msg)
			}
		})
	}
	// The completion itself: the shell asks the binary for candidates.
	out, _, code := qfpurge(t, nil, "__complete", "dlq", "")
	for _, want := range []string{"list", "count", "export", "requeue", "purge"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completing dlq: exit %d, no %q in:\n%s", code, want, out)
		}
	}
	out, _, _ = qfpurge(t, nil, "__complete", "worker", "--batch-")
	if !strings.Contains(out, "--batch-size") || !strings.Contains(out, "--batch-wait") {
		t.Errorf("completing worker --batch-: %s", out)
	}
	if _, _, code := qfpurge(t, nil, "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

// TestNoRedisIsGuessed: without REDIS_URL or --redis-url every command that
// uses Redis refuses with exit 2 and says how to give one.
func TestNoRedisIsGuessed(t *testing.T) {
	sched := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(sched, []byte("schedules:\n  - name: r\n    cron: '@daily'\n    kind: model\n    delete: {name: 'tmp-*'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Everything but Redis is given, so Redis is what is missing.
	env := map[string]string{"QIANFAN_ACCESS_KEY": "ak", "QIANFAN_SECRET_KEY": "sk", "QFPURGE_SCHEDULE": sched}
	for _, args := range [][]string{
		{"worker"}, {"worker", "--qps", "5"},
		{"enqueue", "585"}, {"enqueue", "--kind", "version", "amv-1"},
		{"dlq", "list"}, {"dlq", "count"}, {"dlq", "export"}, {"dlq", "requeue", "--all"}, {"dlq", "purge", "--all", "--yes"},
		{"pause", "status"}, {"pause", "lift"}, {"pause", "set", "maintenance"},
		{"rules", "preview", "r"}, {"rules", "run", "r"}, {"rules", "runs"},
	} {
		out, errOut, code := qfpurge(t, env, args...)
		if code != 2 || !strings.Contains(errOut, "no Redis: set REDIS_URL") || out != "" {
			t.Errorf("%q without REDIS_URL: exit %d, stdout %q, stderr %q; want 2 and how to set REDIS_URL", args, code, out, errOut)
		}
	}
}

// TestDidYouMean: a mistyped flag or subcommand gets one line naming the
// nearest, not the usage.
func TestDidYouMean(t *testing.T) {
	env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"worker", "--qsp", "5"}, "qfpurge: unknown flag --qsp; did you mean --qps?\n"},
		{[]string{"worker", "--qsp=5"}, "qfpurge: unknown flag --qsp; did you mean --qps?\n"},
		{[]string{"worker", "-qps", "5"}, "qfpurge: unknown flag -qps; did you mean --qps?\n"},
		{[]string{"worker", "--batch-wiat", "2s"}, "qfpurge: unknown flag --batch-wiat; did you mean --batch-wait?\n"},
		{[]string{"enqueue", "--kindd", "version", "1"}, "qfpurge: unknown flag --kindd; did you mean --kind?\n"},
		{[]string{"dlq", "list", "--limt", "5"}, "qfpurge: unknown flag --limt; did you mean --limit?\n"},
		{[]string{"dlq", "--redis-ulr", "x", "list"}, "qfpurge: unknown flag --redis-ulr; did you mean --redis-url?\n"},
		{[]string{"rules", "run", "r", "--overide-limit"}, "qfpurge: unknown flag --overide-limit; did you mean --override-limit?\n"},
		{[]string{"worker", "--zzzzzz"}, "qfpurge: unknown flag --zzzzzz (--help lists the flags)\n"},
		{[]string{"dlq", "lsit"}, "qfpurge: unknown command \"lsit\" for \"qfpurge dlq\"; did you mean \"list\"?\n"},
		{[]string{"wroker"}, "qfpurge: unknown command \"wroker\" for \"qfpurge\"; did you mean \"worker\"?\n"},
		{[]string{"worker", "--qps", "fast"}, "qfpurge: invalid argument \"fast\" for \"--qps\" flag: strconv.ParseFloat: parsing \"fast\": invalid syntax\n"},
	} {
		out, errOut, code := qfpurge(t, env, tc.args...)
		if code != 2 || errOut != tc.want || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
