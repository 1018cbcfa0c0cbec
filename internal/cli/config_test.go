package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// testFlags is a flag set like a command's: a few kinds of value, one flag
// with an established environment variable, one local flag.
func testFlags() (*pflag.FlagSet, *struct {
	qps      float64
	wait     time.Duration
	redisURL string
	demo     bool
	config   string
}) {
	v := &struct {
		qps      float64
		wait     time.Duration
		redisURL string
		demo     bool
		config   string
	}{}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.Float64Var(&v.qps, "qps", 10, "")
	fs.DurationVar(&v.wait, "batch-wait", 2*time.Second, "")
	fs.StringVar(&v.redisURL, "redis-url", "", "")
	fs.BoolVar(&v.demo, "demo", false, "")
	fs.StringVar(&v.config, "config", "", "")
	return fs, v
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "qfpurge.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestPrecedence: flags win over the environment, the environment over the
// config file, the file over the defaults; QFPURGE_<FLAG> over an
// established variable.
func TestPrecedence(t *testing.T) {
	file := writeConfig(t, "qps: 3\nbatch-wait: 7s\nredis-url: redis://file:6379/0\n")
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		file    bool
		wantQPS float64
		wantURL string
	}{
		{name: "default", wantQPS: 10},
		{name: "file", file: true, wantQPS: 3, wantURL: "redis://file:6379/0"},
		{name: "env over file", file: true, env: map[string]string{"QFPURGE_QPS": "5", "REDIS_URL": "redis://env:6379/0"}, wantQPS: 5, wantURL: "redis://env:6379/0"},
		{name: "flag over env and file", file: true, args: []string{"--qps", "8", "--redis-url", "redis://flag:6379/0"},
			env: map[string]string{"QFPURGE_QPS": "5", "REDIS_URL": "redis://env:6379/0"}, wantQPS: 8, wantURL: "redis://flag:6379/0"},
		{name: "QFPURGE_ name over the established one", env: map[string]string{"QFPURGE_REDIS_URL": "redis://ours:6379/0", "REDIS_URL": "redis://env:6379/0"},
			wantQPS: 10, wantURL: "redis://ours:6379/0"},
		{name: "flag set to its default still wins", file: true, args: []string{"--qps", "10"}, env: map[string]string{"QFPURGE_QPS": "5"}, wantQPS: 10, wantURL: "redis://file:6379/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, v := testFlags()
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cfg := ""
			if tc.file {
				cfg = file
			}
			s := Sources{Getenv: func(k string) string { return tc.env[k] }, Also: map[string]string{"redis-url": "REDIS_URL"}, Local: []string{"config"}}
			if err := s.Resolve(fs, cfg); err != nil {
				t.Fatal(err)
			}
			if v.qps != tc.wantQPS || v.redisURL != tc.wantURL {
				t.Errorf("qps %v, redis-url %q; want %v, %q", v.qps, v.redisURL, tc.wantQPS, tc.wantURL)
			}
			wantWait := 2 * time.Second
			if tc.file {
				wantWait = 7 * time.Second
			}
			if v.wait != wantWait {
				t.Errorf("batch-wait %v, want %v", v.wait, wantWait)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       []string
	}{
		{name: "unknown key with its line", file: "qps: 3\n\nqsp: 4\n", want: []string{":3: unknown key \"qsp\"; did you mean qps?"}},
		{name: "every unknown key", file: "nope: 1\nbatch-wiat: 2s\n", want: []string{`:1: unknown key "nope"`, `:2: unknown key "batch-wiat"; did you mean batch-wait?`}},
		{name: "local flag is no key", file: "config: other.yaml\n", want: []string{`:1: unknown key "config"`}},
		{name: "bad value with its line", file: "demo: false\nqps: fast\n", want: []string{":2: qps:", "fast"}},
		{name: "not a mapping", file: "- qps\n", want: []string{":1: want a mapping"}},
		{name: "nested value", file: "qps:\n  a: 1\n", want: []string{":2: qps: want a value"}},
		{name: "bad environment value", env: map[string]string{"QFPURGE_BATCH_WAIT": "soon"}, want: []string{`QFPURGE_BATCH_WAIT="soon"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _ := testFlags()
			cfg := ""
			if tc.file != "" {
				cfg = writeConfig(t, tc.file)
			}
			s := Sources{Getenv: func(k string) string { return tc.env[k] }, Local: []string{"config"}}
			err := s.Resolve(fs, cfg)
			if err == nil || !errors.As(err, new(UsageError)) {
				t.Fatalf("Resolve = %v, want a usage error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	fs, _ := testFlags()
	if err := (Sources{Getenv: func(string) string { return "" }}).Resolve(fs, filepath.Join(t.TempDir(), "missing.yaml")); !errors.As(err, new(UsageError)) {
		t.Errorf("a missing config file: %v, want a usage error", err)
	}
}

// TestPrintConfigReadsBack: what PrintConfig writes, --config reads back
// to the same values.
func TestPrintConfigReadsBack(t *testing.T) {
	fs, _ := testFlags()
	if err := fs.Parse([]string{"--qps", "2.5", "--batch-wait", "3s", "--redis-url", "redis://h:6379/0", "--demo"}); err != nil {
		t.Fatal(err)
	}
	s := Sources{Getenv: func(string) string { return "" }, Local: []string{"config"}}
	var b strings.Builder
	if err := s.PrintConfig(&b, fs, func(_, v string) string { return v }); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "config:") {
		t.Errorf("a local flag was printed:\n%s", b.String())
	}
	fs2, v := testFlags()
	if err := s.Resolve(fs2, writeConfig(t, b.String())); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if v.qps != 2.5 || v.wait != 3*time.Second || v.redisURL != "redis://h:6379/0" || !v.demo {
		t.Errorf("read back %+v from:\n%s", *v, b.String())
	}
}

func TestNearest(t *testing.T) {
	names := []string{"qps", "batch-size", "batch-wait", "kind", "schedule", "schedule-sync", "in"}
	for typed, want := range map[string]string{
		"qsp": "qps", "kindd": "kind", "batch-wiat": "batch-wait", "batchsize": "batch-size",
		"5": "", "x": "", "zzzzzz": "", "sched": "", "batch-s": "batch-size",
	} {
		if got := Nearest(typed, names); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", typed, got, want)
		}
	}
}
