package requestscmd

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// TestShowAndCancel: show counts a request's IDs by state (table and
// JSON); cancel --id marks a waiting ID and reports one already deleted.
func TestShowAndCancel(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	p, err := enqueue.New(rdb, enqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []modelid.ID{modelid.IntID(1), modelid.IntID(2), modelid.StringID("am-x")}
	if _, err := p.Enqueue(ctx, enqueue.Request{Kind: modelid.KindModel, IDs: ids, Key: "nightly", RequestedBy: "ci"}); err != nil {
		t.Fatal(err)
	}
	l := ledger.New(rdb, ledger.Config{})
	if _, err := l.Write(ctx, []ledger.Outcome{{Kind: modelid.KindModel, ID: modelid.IntID(1), State: ledger.StateDeleted, Key: "nightly"}}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := New(func(k string) string {
			if k == "REDIS_URL" {
				return srv.URL()
			}
			return ""
		})
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	out := run("show", "nightly", "--ids", "5")
	for _, want := range []string{`requested by\s+ci\n`, `\ndeleted\s+1\n`, `\npending\s+2\n`, `\nrefused\s+0\n`, `deleted: 1\n`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	out = run("cancel", "--id", "2", "1", "--as", "alice")
	if !strings.Contains(out, "model 2: cancelled") || !strings.Contains(out, "model 1: already deleted") {
		t.Errorf("cancel --id:\n%s", out)
	}
	var st enqueue.RequestStatus
	if err := json.Unmarshal([]byte(run("show", "nightly", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.IDs != 3 || st.States["deleted"] != 1 || st.States["pending"] != 2 || st.RequestedBy != "ci" {
		t.Errorf("show --json: %+v", st)
	}
}
