package enqueuecmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/producer"
)

type result struct {
	code   int
	stdout string
	stderr string
}

func runEnqueue(t *testing.T, redisURL, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == "REDIS_URL" {
			return redisURL
		}
		return ""
	}
	err := run(context.Background(), args, env, strings.NewReader(stdin), &out, &errb)
	code := cli.Status("enqueue", err, &errb)
	return result{code, out.String(), errb.String()}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// queued lists every task's kind and IDs, whatever its state.
func queued(t *testing.T, insp *asynq.Inspector) []string {
	t.Helper()
	var out []string
	list := func(ts []*asynq.TaskInfo, err error) {
		if err != nil {
			return
		}
		for _, ti := range ts {
			p, err := tasks.DecodePayload(ti.Payload)
			if err != nil {
				t.Fatalf("task %s: %v", ti.ID, err)
			}
			for _, id := range p.IDs {
				out = append(out, string(p.Kind)+":"+id.String())
			}
		}
	}
	q := asynqlayout.Queue
	list(insp.ListPendingTasks(q))
	list(insp.ListScheduledTasks(q))
	if groups, err := insp.Groups(q); err == nil {
		for _, g := range groups {
			list(insp.ListAggregatingTasks(q, g.Group))
		}
	}
	return out
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
	reset := func() {
		t.Helper()
		if err := rdb.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("arguments of both types", func(t *testing.T) {
		r := runEnqueue(t, srv.URL(), "", "585", "586", "am-a", "am-b", "585")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "enqueued 4 model IDs (2 int, 2 string; 1 duplicate dropped) as 2 tasks: 2 jobs waiting to be batched") {
			t.Errorf("output %q", r.stdout)
		}
	})

	t.Run("one of everything is said in the singular", func(t *testing.T) {
		r := runEnqueue(t, srv.URL(), "", "77")
		if !strings.HasPrefix(r.stdout, "enqueued 1 model ID (1 int, 0 string; 0 duplicates dropped) as 1 task: 1 job waiting to be batched") ||
			!strings.Contains(r.stdout, " 1 ID  waiting in group model/int/") {
			t.Errorf("output %q", r.stdout)
		}
	})

	t.Run("flags after the IDs are flags", func(t *testing.T) {
		reset()
		r := runEnqueue(t, srv.URL(), "", "950001", "--kind", "version", "amv-1", "--json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var rc producer.Receipt
		if err := json.Unmarshal([]byte(r.stdout), &rc); err != nil {
			t.Fatalf("--json after the IDs was not a flag: %v\n%s", err, r.stdout)
		}
		got := strings.Join(queued(t, insp), " ")
		if got != "version:950001 version:amv-1" && got != "version:amv-1 version:950001" {
			t.Errorf("queued %q, want version 950001 and amv-1 only", got)
		}
	})

	t.Run("what looks like a flag is never an ID", func(t *testing.T) {
		reset()
		for _, args := range [][]string{{"585", "-5"}, {"585", "--", "--kind"}, {"585", "--", "-5"}, {"585", "--kind"}} {
			r := runEnqueue(t, srv.URL(), "", args...)
			if r.code != 2 {
				t.Errorf("%q: exit %d, want 2 (%s)", args, r.code, r.stderr)
			}
		}
		if n := size(); n != 0 {
			t.Errorf("%d tasks queued", n)
		}
	})

	t.Run("invalid input enqueues nothing and names the lines", func(t *testing.T) {
		before := size()
		file := writeFile(t, "1\n2\n0\nam\tx\n5\n585,\n1.5\n\ufeff7\ns-1\n")
		r := runEnqueue(t, srv.URL(), "", "-f", file)
		if r.code != 2 {
			t.Fatalf("exit %d, want 2", r.code)
		}
		for _, want := range []string{"6 invalid IDs, nothing enqueued", "ids.txt:3", "ids.txt:4", `ids.txt:6 "585,": stray ","`,
			"ids.txt:7 \"1.5\": not a whole number", `ids.txt:8 "\ufeff7": holds a byte-order mark`, "ids.txt:9"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if size() != before {
			t.Errorf("queue grew from %d to %d", before, size())
		}
	})

	t.Run("a BOM at the start is skipped", func(t *testing.T) {
		reset()
		r := runEnqueue(t, srv.URL(), "", "-f", writeFile(t, "\ufeff910001\r\n910002\r\n"))
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if got := strings.Join(queued(t, insp), " "); got != "model:910001 model:910002" {
			t.Errorf("queued %q", got)
		}
		reset()
		r = runEnqueue(t, srv.URL(), "\ufeff[\n  585,\n  \"am-x\"\n]\n", "-f", "-")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if got := strings.Join(queued(t, insp), " "); got != "model:585 model:am-x" && got != "model:am-x model:585" {
			t.Errorf("queued %q", got)
		}
	})

	t.Run("an ID of the other kind", func(t *testing.T) {
		for _, args := range [][]string{{"--kind", "version", "am-1"}, {"amv-1"}} {
			r := runEnqueue(t, srv.URL(), "", args...)
			if r.code != 2 || !strings.Contains(r.stderr, "send it with kind") {
				t.Errorf("%q: exit %d: %s", args, r.code, r.stderr)
			}
		}
	})

	t.Run("a line over the limit is bad input with its line", func(t *testing.T) {
		file := writeFile(t, "585\n"+strings.Repeat("1", modelid.MaxLine+1)+"\n")
		r := runEnqueue(t, srv.URL(), "", "-f", file)
		if r.code != 2 || !strings.Contains(r.stderr, "ids.txt:2") || !strings.Contains(r.stderr, "line is over") {
			t.Errorf("exit %d: %.300s", r.code, r.stderr)
		}
	})

	t.Run("JSON from stdin with --json receipt", func(t *testing.T) {
		r := runEnqueue(t, srv.URL(), `[585, "amv-p", "amv-q"]`, "-f", "-", "--kind", "version", "--json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var rc producer.Receipt
		if err := json.Unmarshal([]byte(r.stdout), &rc); err != nil {
			t.Fatalf("--json output: %v\n%s", err, r.stdout)
		}
		if rc.Kind != producer.KindVersion || rc.IntIDs != 1 || rc.StringIDs != 2 || len(rc.Batches) != 2 || rc.Tasks != 2 || rc.Batches[0].TaskID == "" ||
			!strings.HasPrefix(rc.Key, "req-") || !rc.KeyGenerated {
			t.Errorf("receipt %+v", rc)
		}
	})

	t.Run("a request without a key gets one to follow it by", func(t *testing.T) {
		reset()
		var keys []string
		for range 2 {
			r := runEnqueue(t, srv.URL(), "", "585", "am-a")
			m := regexp.MustCompile(`(?m)^request key \(generated\) (req-\S+): follow with "qfpurge requests show (\S+)", cancel with "qfpurge requests cancel (\S+)"$`).FindStringSubmatch(r.stdout)
			if r.code != 0 || m == nil || m[2] != m[1] || m[3] != m[1] {
				t.Fatalf("exit %d: %q", r.code, r.stdout)
			}
			st, err := enqueue.ReadRequest(context.Background(), rdb, ledger.New(rdb, ledger.Config{}), m[1], 0)
			if err != nil || st.IDs != 2 || st.States["pending"] != 2 || st.RequestedBy == "" {
				t.Errorf("request %s: %+v, %v", m[1], st, err)
			}
			keys = append(keys, m[1])
		}
		if keys[0] == keys[1] {
			t.Errorf("two requests share key %q", keys[0])
		}
	})

	t.Run("stdin from a file is read twice without a copy", func(t *testing.T) {
		reset()
		f, err := os.Open(writeFile(t, "[1, 2, 3]"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out, errb bytes.Buffer
		err = run(context.Background(), []string{"-f", "-"}, func(k string) string {
			if k == "REDIS_URL" {
				return srv.URL()
			}
			return ""
		}, f, &out, &errb)
		if err != nil || !strings.Contains(out.String(), "enqueued 3 model IDs") {
			t.Fatalf("%v: %s %s", err, out.String(), errb.String())
		}
	})

	t.Run("across batches", func(t *testing.T) {
		reset()
		var in strings.Builder
		for i := 1; i <= 250; i++ {
			in.WriteString(strconv.Itoa(1000+i) + "\n")
		}
		in.WriteString("1001\n") // a repeat
		r := runEnqueue(t, srv.URL(), in.String(), "-f", "-", "--key", "bulk")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "enqueued 250 model IDs (250 int, 0 string; 1 duplicate dropped) as 3 tasks: 2 batches ready now, 1 job waiting to be batched") ||
			!strings.Contains(r.stdout, "task bulk/int/0  int    100 IDs  ready now") ||
			!strings.Contains(r.stdout, "\nrequest key bulk: follow with \"qfpurge requests show bulk\"") {
			t.Errorf("output %q", r.stdout)
		}
		r = runEnqueue(t, srv.URL(), in.String(), "-f", "-", "--key", "bulk")
		if !strings.HasPrefix(r.stdout, `nothing enqueued: key "bulk" was used before (3 tasks already enqueued under this key)`) ||
			strings.Contains(r.stdout, "enqueued 250") || size() != 3 {
			t.Errorf("repeat: %q, %d tasks", r.stdout, size())
		}
	})

	t.Run("a key reused for other IDs exits 2 and enqueues nothing", func(t *testing.T) {
		reset()
		if r := runEnqueue(t, srv.URL(), "", "--key", "k7", "1", "2"); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		before := size()
		r := runEnqueue(t, srv.URL(), "", "--key", "k7", "3", "4")
		if r.code != 2 || !strings.Contains(r.stderr, `idempotency key "k7" already used for a different request`) {
			t.Errorf("exit %d, stderr %q; want 2 naming the key", r.code, r.stderr)
		}
		if size() != before || strings.Contains(strings.Join(queued(t, insp), " "), "model:3") {
			t.Errorf("the conflicting request enqueued something: %d tasks (was %d), queued %v", size(), before, queued(t, insp))
		}
	})

	t.Run("delayed", func(t *testing.T) {
		reset()
		r := runEnqueue(t, srv.URL(), "", "--in", "1h", "77")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		q, _ := insp.GetQueueInfo(asynqlayout.Queue)
		if q.Scheduled != 1 {
			t.Errorf("%d scheduled, want 1", q.Scheduled)
		}
		if !strings.Contains(r.stdout, "1 batch scheduled for ") || strings.Contains(r.stdout, "ready") {
			t.Errorf("a delayed batch is not called scheduled: %q", r.stdout)
		}
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{{}, {"--kind", "bucket", "1"}, {"--in", "1h", "--at", "2030-01-01T00:00:00Z", "1"}, {"--at", "tomorrow", "1"},
			{"--shards", "99", "1"}, {"--string", "1"}, {"-f", "/nonexistent"}} {
			if r := runEnqueue(t, srv.URL(), "", args...); r.code != 2 {
				t.Errorf("%q: exit %d, want 2 (%s)", args, r.code, r.stderr)
			}
		}
	})

	t.Run("unreachable Redis exits 1", func(t *testing.T) {
		r := runEnqueue(t, "redis://127.0.0.1:1", "", "5")
		if r.code != 1 || !strings.Contains(r.stderr, "is not reachable") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
}

// TestUsageHidesRedisURL: -h prints the usage, a mistyped flag one line
// naming the nearest flag, and neither REDIS_URL's value; -h exits 0.
func TestUsageHidesRedisURL(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-pa55"
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{{[]string{"-h"}, 0, "--redis-url URL"}, {[]string{"--help"}, 0, "--redis-url URL"},
		{[]string{"--kindd", "model", "1"}, 2, "enqueue: unknown flag --kindd; did you mean --kind?\n"}} {
		args := tc.args
		r := runEnqueue(t, "redis://:"+secret+"@127.0.0.1:1", "", args...)
		if strings.Contains(r.stderr+r.stdout, secret) {
			t.Errorf("%q printed the password:\n%s", args, r.stderr)
		}
		if !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("%q: want %q in:\n%s%s", args, tc.want, r.stdout, r.stderr)
		}
		if tc.code == 2 && strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: want one line, got:\n%s", args, r.stderr)
		}
		if r.code != tc.code {
			t.Errorf("%q: exit %d, want %d", args, r.code, tc.code)
		}
	}
	r := runEnqueue(t, secret, "", "5")
	if r.code != 2 || strings.Contains(r.stderr, secret) {
		t.Errorf("a bare password as REDIS_URL: exit %d: %s", r.code, r.stderr)
	}
}

// run is the command as the binaries run it, with the given environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	return cli.RunIO(ctx, New(getenv), args, stdin, stdout, stderr)
}
