package dlqcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

func TestDLQCommands(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	l := ledger.New(rdb, ledger.Config{})
	dead := []ledger.Outcome{
		{Kind: modelid.KindModel, ID: modelid.IntID(404), State: ledger.StateDead, Code: 500001, Message: "param invalid", LogID: "2443985832", TaskID: "t1", Attempts: 1},
		{Kind: modelid.KindModel, ID: modelid.StringID("am-gone"), State: ledger.StateDead, Code: 500001, Message: "param invalid", LogID: "2443985833", TaskID: "t2", Attempts: 1},
		{Kind: modelid.KindVersion, ID: modelid.StringID("amv-9"), State: ledger.StateDead, Code: 6, Message: "no permission", TaskID: "t3", Attempts: 1},
	}
	if _, err := l.Write(ctx, dead); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "REDIS_URL" {
			return srv.URL()
		}
		return ""
	}
	dlq := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, args, env, &out, &errb)
		return out.String() + errb.String(), err
	}

	out, err := dlq("list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "500001 param invalid (log_id 2443985832)") || !strings.Contains(out, "am-gone") {
		t.Errorf("list output lacks the reasons:\n%s", out)
	}
	out, err = dlq("list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var listed []deadletter.Entry
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if len(listed) != 3 || listed[0].ID != modelid.IntID(404) || listed[0].LogID != "2443985832" {
		t.Fatalf("list --json = %+v", listed)
	}
	out, err = dlq("export")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 3 {
		t.Errorf("export wrote %d lines, want 3:\n%s", n, out)
	}

	if out, err := dlq("requeue", listed[0].EntryID); err != nil || !strings.Contains(out, "requeued 1 dead letter (0 archived tasks removed)") ||
		!strings.Contains(out, ": request key req-") {
		t.Fatalf("requeue: %v\n%s", err, out)
	}
	if out, _ := dlq("count"); strings.TrimSpace(out) != "2" {
		t.Errorf("count after requeue = %q, want 2", out)
	}
	q, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(asynqlayout.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if q.Size != 1 {
		t.Errorf("queue holds %d tasks after requeuing one ID, want 1", q.Size)
	}

	if _, err := dlq("purge", "--all"); !errors.As(err, new(cli.UsageError)) {
		t.Errorf("purge --all without --yes: %v, want a usage error", err)
	}
	if out, _ := dlq("count"); strings.TrimSpace(out) != "2" {
		t.Errorf("unconfirmed purge removed entries: count %q", out)
	}
	if _, err := dlq("purge", "--all", "--yes"); err != nil {
		t.Fatal(err)
	}
	if out, _ := dlq("count"); strings.TrimSpace(out) != "0" {
		t.Errorf("count after purge = %q, want 0", out)
	}
	if _, err := dlq("requeue", "1-1"); !errors.As(err, new(cli.UsageError)) {
		t.Errorf("requeue of an unknown entry: %v, want a usage error", err)
	}
	if _, err := dlq("frobnicate"); !errors.As(err, new(cli.UsageError)) {
		t.Errorf("unknown command: %v, want a usage error", err)
	}
}

// TestUsageHidesRedisURL: -h exits 0, and neither it nor a mistake prints
// REDIS_URL's value.
func TestUsageHidesRedisURL(t *testing.T) {
	t.Parallel()
	env := func(string) string { return "redis://:s3cret-pa55@127.0.0.1:1" }
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{"-h"}, 0}, {[]string{"--nope"}, 2}, {[]string{}, 2}, {[]string{"list", "-h"}, 0}} {
		var out bytes.Buffer
		err := run(context.Background(), tc.args, env, &out, &out)
		if code := cli.Status("dlq", err, &out); code != tc.code {
			t.Errorf("%q: exit %d, want %d", tc.args, code, tc.code)
		}
		if strings.Contains(out.String(), "s3cret") {
			t.Errorf("%q printed the password:\n%s", tc.args, out.String())
		}
	}
}

// run is the command as qfpurge runs it, with the given environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return cli.RunIO(ctx, New(getenv), args, nil, stdout, stderr)
}
