package pausecmd

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

func TestPauseCommands(t *testing.T) {
	srv := redistest.Start(t)
	env := func(k string) string {
		if k == "REDIS_URL" {
			return srv.URL()
		}
		return ""
	}
	do := func(args ...string) (string, int) {
		var out, errb strings.Builder
		err := run(context.Background(), args, env, &out, &errb)
		return out.String() + errb.String(), cli.Status("pause", err, &errb)
	}
	if out, code := do("status"); code != 0 || !strings.Contains(out, "running") {
		t.Errorf("status = %d %q; want running", code, out)
	}
	if out, code := do("set", "Baidu", "maintenance"); code != 0 || !strings.Contains(out, "paused until") {
		t.Errorf("set = %d %q", code, out)
	}
	st, _ := fleet.NewPauseStore(srv.Client(t)).Status(context.Background())
	if st.State != fleet.Paused || !st.Manual || !strings.Contains(st.Reason, "Baidu maintenance") {
		t.Errorf("stored pause %+v", st)
	}
	if out, code := do("status"); code != 0 || !strings.Contains(out, "paused since") || !strings.Contains(out, "Baidu maintenance") {
		t.Errorf("status = %d %q; want paused with the reason", code, out)
	}
	for _, args := range [][]string{{"status", "--json"}, {"--json", "status"}} {
		out, code := do(args...)
		var got fleet.PauseStatus
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.State != fleet.Paused || !strings.Contains(got.Reason, "Baidu maintenance") {
			t.Errorf("%q = %d %q; want the pause as JSON", args, code, out)
		}
	}
	if out, code := do("lift"); code != 0 || !strings.Contains(out, "resumed") {
		t.Errorf("lift = %d %q", code, out)
	}
	evs, _ := srv.Client(t).XRange(context.Background(), ledger.EventStream, "-", "+").Result()
	if len(evs) != 2 || evs[0].Values["outcome"] != "paused" || evs[1].Values["outcome"] != "resumed" {
		t.Errorf("events %v; want paused then resumed", evs)
	}
	for _, args := range [][]string{{}, {"nope"}, {"set"}, {"lift", "x"}} {
		if _, code := do(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// run is the command as qfpurge runs it, with the given environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return cli.RunIO(ctx, New(getenv), args, nil, stdout, stderr)
}
