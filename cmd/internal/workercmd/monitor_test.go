package workercmd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

func TestRunRefusesOpenMonitorWithoutCredentials(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	env := map[string]string{
		"REDIS_URL": srv.URL(), "QIANFAN_ACCESS_KEY": "ak", "QIANFAN_SECRET_KEY": "sk",
		"QFPURGE_MONITOR_PASSWORD": "hunter2-secret", // a password without a user is not enough
	}
	var logs workertest.Log
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"--monitor-addr", "0.0.0.0:0", "--shutdown-timeout", "1s"}, func(k string) string { return env[k] }, io.Discard, &logs)
	if err == nil || !strings.Contains(err.Error(), "monitor") || !errors.As(err, new(cli.UsageError)) {
		t.Fatalf("run with an open monitor address and no credentials = %v, want a monitor usage error", err)
	}
	env["QFPURGE_MONITOR_USER"] = "ops"
	delete(env, "QFPURGE_MONITOR_PASSWORD")
	err = run(ctx, []string{"--monitor-addr", "0.0.0.0:0"}, func(k string) string { return env[k] }, io.Discard, &logs)
	if !errors.Is(err, monitor.ErrNoCredentials) {
		t.Fatalf("run with an open monitor address and only a user = %v, want ErrNoCredentials", err)
	}
	if strings.Contains(logs.String(), "hunter2-secret") {
		t.Error("the monitor password reached the logs")
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	base := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name         string
		args         []string
		env          map[string]string
		wantAddr     string
		wantExplicit bool
		wantHosts    []string
		wantErr      string
	}{
		{name: "default monitor", env: base, wantAddr: monitor.DefaultAddr},
		{name: "monitor flag", args: []string{"--monitor-addr", "127.0.0.1:9"}, env: base, wantAddr: "127.0.0.1:9", wantExplicit: true},
		{name: "monitor env", env: with("QFPURGE_MONITOR_ADDR", "127.0.0.1:7"), wantAddr: "127.0.0.1:7", wantExplicit: true},
		{name: "flag wins over env", args: []string{"--monitor-addr", "127.0.0.1:9"}, env: with("QFPURGE_MONITOR_ADDR", "127.0.0.1:7"), wantAddr: "127.0.0.1:9", wantExplicit: true},
		{name: "monitor off", args: []string{"--monitor-addr", ""}, env: base, wantAddr: "", wantExplicit: true},
		{name: "no Redis", env: with("REDIS_URL", ""), wantErr: "no Redis: set REDIS_URL"},
		{name: "embedded on request", args: []string{"--embedded-redis"}, env: with("REDIS_URL", ""), wantAddr: monitor.DefaultAddr},
		{name: "demo", args: []string{"--demo"}, env: with("REDIS_URL", ""), wantAddr: monitor.DefaultAddr},
		{name: "Redis URL and embedded", args: []string{"--embedded-redis"}, env: base, wantErr: "exclude each other"},
		{name: "argument", args: []string{"extra"}, env: base, wantErr: `unexpected argument "extra"`},
		{name: "log level", env: with("QFPURGE_LOG_LEVEL", "loud"), wantErr: `--log-level "loud"`},
		{name: "monitor hosts env", env: with("QFPURGE_MONITOR_HOSTS", " q.example.com , p.example.com,"), wantAddr: monitor.DefaultAddr,
			wantHosts: []string{"q.example.com", "p.example.com"}},
		{name: "monitor hosts flag", args: []string{"--monitor-hosts", "f.example.com"}, env: with("QFPURGE_MONITOR_HOSTS", "q.example.com"),
			wantAddr: monitor.DefaultAddr, wantHosts: []string{"f.example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, new(cli.UsageError)) {
					t.Fatalf("parseFlags = %v, want a usage error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m := o.worker.Monitor; m.Addr != tc.wantAddr || m.Explicit != tc.wantExplicit {
				t.Errorf("monitor addr %q explicit %v, want %q %v", m.Addr, m.Explicit, tc.wantAddr, tc.wantExplicit)
			}
			if tc.wantHosts != nil && strings.Join(o.worker.Monitor.Hosts, ",") != strings.Join(tc.wantHosts, ",") {
				t.Errorf("monitor hosts %q, want %q", o.worker.Monitor.Hosts, tc.wantHosts)
			}
		})
	}
}

// TestHelpKeepsSecrets: -h prints the usage and a mistyped flag one line;
// neither shows the Redis password from the environment.
func TestHelpKeepsSecrets(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REDIS_URL": "redis://:s3cret-pw@r:6379/0", "QIANFAN_SECRET_KEY": "s3cret-sk"}
	for _, args := range [][]string{{"-h"}, {"--no-such-flag"}} {
		var out strings.Builder
		err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &out)
		if got := cli.Status("worker", err, &out); (args[0] == "-h") != (got == 0) {
			t.Errorf("%v: exit %d", args, got)
		}
		if strings.Contains(out.String(), "s3cret") {
			t.Errorf("%v printed a secret:\n%s", args, out.String())
		}
		if args[0] == "-h" && !strings.Contains(out.String(), "QIANFAN_ACCESS_KEY") {
			t.Errorf("%v: the usage does not name the environment variables:\n%s", args, out.String())
		}
		if args[0] != "-h" && out.String() != "worker: unknown flag --no-such-flag (--help lists the flags)\n" {
			t.Errorf("%v: want one line naming the flag, got:\n%s", args, out.String())
		}
	}
}

// TestRunRefusesWrongSecret: a worker started with a wrong secret key stops
// within seconds, naming the problem, before it takes any work.
func TestRunRefusesWrongSecret(t *testing.T) {
	t.Parallel()
	e := workertest.New(t, qianfantest.Config{})
	p, err := enqueue.New(e.RDB, enqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Enqueue(context.Background(), enqueue.Request{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(585)}}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDIS_URL": e.Redis.URL(), "QIANFAN_BASE_URL": e.URL,
		"QIANFAN_ACCESS_KEY": qianfantest.DefaultAccessKey, "QIANFAN_SECRET_KEY": "wrong-secret-0123"}
	var logs workertest.Log
	start := time.Now()
	err = run(context.Background(), []string{"--monitor-addr", ""}, func(k string) string { return env[k] }, io.Discard, &logs)
	if err == nil || !strings.Contains(err.Error(), "signature mismatch") || time.Since(start) > 10*time.Second {
		t.Fatalf("run with a wrong secret = %v after %s; want a refusal naming the signature mismatch within seconds", err, time.Since(start))
	}
	if cli.Status("worker", err, io.Discard) == 0 {
		t.Error("exit status 0")
	}
	if strings.Contains(err.Error()+logs.String(), "wrong-secret-0123") {
		t.Error("the secret reached the error or the logs")
	}
	if st := e.Fake.Stats(); st.Deletes != 0 || e.Drained() {
		t.Errorf("deletes %d, queue drained %v: the worker took work", st.Deletes, e.Drained())
	}
}

// TestRedisLogsFollowLogFormat: go-redis's own lines about a Redis that
// cannot be reached come out as the worker's JSON, not as raw stderr text.
// Not parallel: go-redis has one logger per process.
func TestRedisLogsFollowLogFormat(t *testing.T) {
	// No retries: the first failed dial is enough.
	env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0?max_retries=-1", "QIANFAN_ACCESS_KEY": "ak", "QIANFAN_SECRET_KEY": "sk"}
	var logs workertest.Log
	err := run(context.Background(), []string{"--log-format", "json", "--monitor-addr", ""}, func(k string) string { return env[k] }, io.Discard, &logs)
	if err == nil {
		t.Fatal("run against a closed port succeeded")
	}
	var fromRedis int
	for line := range strings.Lines(logs.String()) {
		var l struct{ Msg, Component string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Errorf("not a JSON log line: %q", line)
			continue
		}
		if l.Component == "redis" && strings.HasPrefix(l.Msg, "redis: ") {
			fromRedis++
		}
	}
	if fromRedis == 0 {
		t.Errorf("no go-redis line in the worker's log:\n%s", logs.String())
	}
}

// parseFlags resolves args and the environment as the worker command does,
// and returns the options it would run with.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var got options
	cmd := newCommand(getenv, func(_ context.Context, o options, _ io.Writer) error { got = o; return nil })
	err := cli.RunIO(context.Background(), cmd, args, nil, stderr, stderr)
	return got, err
}

// run is the worker command as the binaries run it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return cli.RunIO(ctx, New(getenv), args, nil, stdout, stderr)
}

// TestPrintConfig: --print-config prints what the worker would run with,
// from every source, with the Redis password and the secrets masked, as a
// config file that --config reads back; it needs no Redis and exits 0.
func TestPrintConfig(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(cfg, []byte("qps: 3\nconcurrency: 4\nmonitor-hosts: [a.example.com, b.example.com]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"REDIS_URL": "redis://:s3cret-pw@r:6379/0", "QIANFAN_ACCESS_KEY": "ak-visible", "QIANFAN_SECRET_KEY": "s3cret-sk",
		"QFPURGE_API_TOKENS": "s3cret-token", "QFPURGE_CONCURRENCY": "6", "QFPURGE_BATCH_WAIT": "5s",
		"QFPURGE_OTLP_ENDPOINT": "http://otel:s3cret-otlp@collector:4318", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer s3cret-otlp",
		"QIANFAN_READ_ACCESS_KEY": "rak-visible", "QIANFAN_READ_SECRET_KEY": "s3cret-read-sk", "QFPURGE_READ_QPS": "7",
	}
	getenv := func(k string) string { return env[k] }
	var out, errb strings.Builder
	err := run(context.Background(), []string{"--config", cfg, "--print-config", "--max-retry", "2"}, getenv, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	got := out.String()
	if strings.Contains(got, "s3cret") {
		t.Errorf("a secret was printed:\n%s", got)
	}
	for _, want := range []string{
		"qps: 3\n",              // file
		"concurrency: 6\n",      // environment over file
		"batch-wait: 5s\n",      // environment
		"max-retry: 2\n",        // flag
		"retention: 168h0m0s\n", // default
		`redis-url: redis://:xxxxx@r:6379/0` + "\n", // REDIS_URL, password masked
		`monitor-hosts: a.example.com,b.example.com` + "\n",
		"# QIANFAN_ACCESS_KEY: ak-visible\n", "# QIANFAN_SECRET_KEY: (set, masked)\n", "# QFPURGE_API_TOKENS: (set, masked)\n",
		"# QFPURGE_MONITOR_TOKEN: (unset)\n",
		"otlp-endpoint: http://otel:xxxxx@collector:4318\n", "# OTEL_EXPORTER_OTLP_HEADERS: (set, masked)\n",
		"read-qps: 7\n", "# QIANFAN_READ_ACCESS_KEY: rak-visible\n", "# QIANFAN_READ_SECRET_KEY: (set, masked)\n",
		"qianfan-base-url: " + qianfan.DefaultBaseURL + "\n", // none set: the one the client calls
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	// Read back with no environment, it gives the same configuration.
	back := filepath.Join(t.TempDir(), "back.yaml")
	if err := os.WriteFile(back, []byte(got), 0o600); err != nil {
		t.Fatal(err)
	}
	var again strings.Builder
	if err := run(context.Background(), []string{"--config", back, "--print-config"}, func(string) string { return "" }, &again, io.Discard); err != nil {
		t.Fatal(err)
	}
	if a, b := flagLines(got), flagLines(again.String()); a != b {
		t.Errorf("read back:\n%s\nwant:\n%s", b, a)
	}
	// Without any Redis, --print-config still prints.
	if err := run(context.Background(), []string{"--print-config"}, func(string) string { return "" }, io.Discard, io.Discard); err != nil {
		t.Errorf("--print-config without Redis: %v", err)
	}
}

// TestPrintConfigBaseURL: --print-config shows the Qianfan base URL the
// worker calls: the default when none is set, else the one set (its
// password masked); with --demo, whose fake gets its address on start, none.
func TestPrintConfigBaseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unset", nil, nil, "qianfan-base-url: " + qianfan.DefaultBaseURL + "\n"},
		{"environment", nil, map[string]string{"QIANFAN_BASE_URL": "http://127.0.0.1:8300"}, "qianfan-base-url: http://127.0.0.1:8300\n"},
		{"flag with a password", []string{"--qianfan-base-url", "https://u:s3cret@proxy.example.com"}, nil, "qianfan-base-url: https://u:xxxxx@proxy.example.com\n"},
		{"demo", []string{"--demo"}, nil, `qianfan-base-url: ""` + "\n"},
	} {
		var out, errb strings.Builder
		err := run(context.Background(), append(tc.args, "--print-config"), func(k string) string { return tc.env[k] }, &out, &errb)
		if err != nil {
			t.Errorf("%s: %v\n%s", tc.name, err, errb.String())
			continue
		}
		if !strings.Contains(out.String(), tc.want) || strings.Contains(out.String(), "s3cret") {
			t.Errorf("%s: want %q, no password, in:\n%s", tc.name, tc.want, out.String())
		}
	}
}

// flagLines drops the comment lines of a printed config.
func flagLines(s string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// TestQPSFromEnvironment: QFPURGE_QPS, which .env.example documents,
// reaches the worker's configuration.
func TestQPSFromEnvironment(t *testing.T) {
	t.Parallel()
	o, err := parseFlags(nil, func(k string) string {
		return map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "QFPURGE_QPS": "25"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.worker.QPS != 25 {
		t.Errorf("QPS %v, want 25 from QFPURGE_QPS", o.worker.QPS)
	}
}

// TestEveryFlagHasEnvironment: each worker flag but --config and
// --print-config is read from QFPURGE_<FLAG>.
func TestEveryFlagHasEnvironment(t *testing.T) {
	t.Parallel()
	fs := New(func(string) string { return "" }).Flags()
	env := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		v := f.DefValue
		switch {
		case f.Value.Type() == "bool":
			v = "true"
		case v == "":
			v = "x"
		}
		env[cli.EnvName(f.Name)] = v
	})
	if err := sources(func(k string) string { return env[k] }).Resolve(fs, ""); err != nil {
		t.Fatal(err)
	}
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		n++
		local := f.Name == "config" || f.Name == "print-config"
		if f.Changed == local {
			t.Errorf("--%s: set from %s is %v", f.Name, cli.EnvName(f.Name), f.Changed)
		}
	})
	if n < 30 {
		t.Errorf("only %d flags", n)
	}
}
