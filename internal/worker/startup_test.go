package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/worker"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

func TestStartupWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		opts     redis.Options // credentials, protocol
		cfg      worker.Config
		want     []string
		wantInfo string
	}{
		{name: "open, nothing on disk", want: []string{worker.WarnRedisNoAuth, worker.WarnRedisNoPersistence}},
		{name: "open, under RESP2", opts: redis.Options{Protocol: 2}, want: []string{worker.WarnRedisNoAuth, worker.WarnRedisNoPersistence}},
		{name: "password and AOF", args: []string{"--requirepass", "pw-0123456789", "--appendonly", "yes"},
			opts: redis.Options{Password: "pw-0123456789"}},
		{name: "RDB only", args: []string{"--requirepass", "pw-0123456789", "--save", "900 1"},
			opts: redis.Options{Password: "pw-0123456789"}, wantInfo: "RDB snapshots only"},
		// A user denied ACL and CONFIG cannot tell, so nothing is claimed,
		// though this Redis is in fact open.
		{name: "cannot tell", args: []string{"--user", "app", "on", ">app-pw-0123456789", "~*", "&*", "+@all", "-@admin", "-@dangerous"},
			opts: redis.Options{Username: "app", Password: "app-pw-0123456789"}},
		{name: "embedded", cfg: worker.Config{EmbeddedRedis: true}, want: []string{worker.WarnRedisEmbedded}},
		{name: "demo", cfg: worker.Config{EmbeddedRedis: true, Demo: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.StartWith(t, tc.args...)
			opts := tc.opts
			opts.Addr = srv.Addr
			rdb := redis.NewClient(&opts)
			t.Cleanup(func() { rdb.Close() })
			if err := rdb.Ping(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			var logs strings.Builder
			got := worker.StartupWarnings(context.Background(), rdb, tc.cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			var names []string
			for _, w := range got {
				names = append(names, w.Name)
				if w.Message == "" {
					t.Errorf("%s without a message", w.Name)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("warnings %v, want %v", names, tc.want)
			}
			if tc.wantInfo != "" && !strings.Contains(logs.String(), tc.wantInfo) {
				t.Errorf("log %q lacks %q", logs.String(), tc.wantInfo)
			}
		})
	}
}

// TestStartupWarningsShown: a worker on an open Redis that keeps nothing
// on disk says so in its log, on /readyz (still 200) and in /metrics.
func TestStartupWarningsShown(t *testing.T) {
	t.Parallel()
	e := workertest.New(t, qianfantest.Config{})
	w, log := e.Start(t, func(c *worker.Config) { c.Monitor.Addr = "127.0.0.1:0" })
	base := "http://" + w.MonitorAddr()
	var body string
	workertest.Eventually(t, 15*time.Second, "/readyz 200", func() bool {
		var code int
		code, body = get(t, base+"/readyz")
		return code == 200
	})
	for _, want := range []string{"warning: redis_no_auth: ", "warning: redis_no_persistence: "} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz %q lacks %q", body, want)
		}
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{`qfpurge_startup_warning{warning="redis_no_auth"} 1`, `qfpurge_startup_warning{warning="redis_no_persistence"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `warning="redis_embedded"`) {
		t.Error("/metrics shows a warning that does not apply")
	}
	if l := log.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "warning=redis_no_auth") {
		t.Errorf("log lacks the warning:\n%s", l)
	}
}
