package enqueuecmd

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// TestDryRunWithTheReadPairOnly: --dry-run runs with a read-only pair and
// no full key; every call it makes is signed by the read pair, and nothing
// is deleted. Without either pair it is a usage error naming both.
func TestDryRunWithTheReadPairOnly(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	inv := qianfantest.NewInventory(qianfantest.Generate{Models: 3, Versions: 1, Seed: 4}, time.Now())
	inv.Services = []qianfantest.Service{{ID: 1, IDStr: "svco-1", Name: "chat", Status: "Serving", Model: inv.Models[0].IDStr, ProtocolVersion: 2}}
	fake := qianfantest.New(qianfantest.Config{Inventory: inv,
		Credentials: map[string]string{qianfantest.DefaultAccessKey: qianfantest.DefaultSecretKey, "read-ak": "read-sk"},
		Permissions: map[string]qianfantest.Permission{"read-ak": qianfantest.PermRead}})
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	env := map[string]string{"REDIS_URL": srv.URL(), "QIANFAN_BASE_URL": hs.URL, "QFPURGE_QPS": "0",
		"QIANFAN_READ_ACCESS_KEY": "read-ak", "QIANFAN_READ_SECRET_KEY": "read-sk"}
	dry := func() (string, int) {
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{"--dry-run", inv.Models[0].IDStr, inv.Models[1].IDStr}, func(k string) string { return env[k] },
			strings.NewReader(""), &out, &errb)
		code := cli.Status("enqueue", err, &errb)
		return out.String() + errb.String(), code
	}
	out, code := dry()
	if code != 0 || !strings.Contains(out, "protect it (in use)") || !strings.Contains(out, "delete it") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	st := fake.Stats()
	if k := st.Keys["read-ak"]; k.Reads == 0 || k.Deletes != 0 || len(st.Keys) != 1 || st.Deletes != 0 {
		t.Errorf("calls by key %+v; want reads by the read pair only", st.Keys)
	}
	delete(env, "QIANFAN_READ_SECRET_KEY")
	if out, code := dry(); code != 2 || !strings.Contains(out, "go together") {
		t.Errorf("half a read pair: exit %d\n%s", code, out)
	}
	delete(env, "QIANFAN_READ_ACCESS_KEY")
	if out, code := dry(); code != 2 || !strings.Contains(out, "QIANFAN_READ_ACCESS_KEY and QIANFAN_READ_SECRET_KEY (a read-only pair is enough)") {
		t.Errorf("no pair: exit %d\n%s", code, out)
	}
}
