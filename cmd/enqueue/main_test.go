package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/producer"
)

type result struct {
	code   int
	stdout string
	stderr string
}

func enqueue(t *testing.T, redisURL, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == "REDIS_URL" {
			return redisURL
		}
		return ""
	}
	err := run(context.Background(), args, env, strings.NewReader(stdin), &out, &errb)
	code := exitCode(err, &errb)
	return result{code, out.String(), errb.String()}
}

func TestEnqueueCommand(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	size := func() int {
		q, err := insp.GetQueueInfo(asynqlayout.Queue)
		if err != nil {
			return 0
		}
		return q.Size
	}

	t.Run("arguments of both types", func(t *testing.T) {
		r := enqueue(t, srv.URL(), "", "585", "586", "am-a", "am-b", "585")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "enqueued 4 model IDs (2 int, 2 string; 1 duplicates dropped) as 2 tasks") {
			t.Errorf("output %q", r.stdout)
		}
	})

	t.Run("invalid input enqueues nothing and names the lines", func(t *testing.T) {
		before := size()
		file := filepath.Join(t.TempDir(), "ids.txt")
		os.WriteFile(file, []byte("1\n2\n0\nam\tx\n5\n"), 0o600)
		r := enqueue(t, srv.URL(), "", "-f", file)
		if r.code != 2 {
			t.Fatalf("exit %d, want 2", r.code)
		}
		for _, want := range []string{"2 invalid ID(s), nothing enqueued", "ids.txt:3", "ids.txt:4"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if size() != before {
			t.Errorf("queue grew from %d to %d", before, size())
		}
	})

	t.Run("JSON from stdin with --json receipt", func(t *testing.T) {
		r := enqueue(t, srv.URL(), `[585, "585", "am-q"]`, "-f", "-", "--kind", "version", "--json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var rc producer.Receipt
		if err := json.Unmarshal([]byte(r.stdout), &rc); err != nil {
			t.Fatalf("--json output: %v\n%s", err, r.stdout)
		}
		if rc.Kind != producer.KindVersion || rc.IntIDs != 1 || rc.StringIDs != 2 || len(rc.Batches) != 2 || rc.Batches[0].TaskID == "" {
			t.Errorf("receipt %+v", rc)
		}
	})

	t.Run("delayed", func(t *testing.T) {
		r := enqueue(t, srv.URL(), "", "--in", "1h", "77")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		q, _ := insp.GetQueueInfo(asynqlayout.Queue)
		if q.Scheduled != 1 {
			t.Errorf("%d scheduled, want 1", q.Scheduled)
		}
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{{}, {"--kind", "bucket", "1"}, {"--in", "1h", "--at", "2030-01-01T00:00:00Z", "1"}, {"--at", "tomorrow", "1"}, {"--shards", "99", "1"}} {
			if r := enqueue(t, srv.URL(), "", args...); r.code != 2 {
				t.Errorf("%q: exit %d, want 2 (%s)", args, r.code, r.stderr)
			}
		}
	})

	t.Run("unreachable Redis exits 1", func(t *testing.T) {
		r := enqueue(t, "redis://127.0.0.1:1", "", "5")
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach Redis") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
}
