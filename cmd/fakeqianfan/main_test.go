package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"))
}

// start runs the command with args and returns its base URL; stop ends it.
func start(t *testing.T, args ...string) (base string, stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var stderr strings.Builder
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no listening line: %v (run: %v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	return base, func() string {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
		http.DefaultClient.CloseIdleConnections()
		return stderr.String()
	}
}

func TestHelpExitsZero(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, io.Discard, &out); err != nil {
		t.Errorf("-h: %v", err)
	}
	if !strings.Contains(out.String(), "-v1-off-after") {
		t.Errorf("usage does not list the flags:\n%s", out.String())
	}
}

func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"models":[{"id":0}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-v1-gone", "teapot"},
		{"-inventory", bad},
		{"-inventory", bad, "-models", "3"},
		{"-services", "2"},
		{"-assumptions", bad},
		{"-nope"},
	} {
		if err := run(t.Context(), append([]string{"-addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestInventoryFlags(t *testing.T) {
	dump := filepath.Join(t.TempDir(), "inv.json")
	base, stop := start(t, "-models", "7", "-versions", "2", "-services", "3", "-inventory-seed", "5",
		"-dump-inventory", dump, "-v1-off-after", "2", "-v2-gone", "410", "-refuse-in-use")
	c, err := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
		qianfan.WithBaseURL(base))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	sets, err := c.WalkCustomModelSets(ctx, 3)
	if err != nil || len(sets) != 7 || len(sets[0].ModelIDs) != 2 {
		t.Fatalf("walk: %d sets, %v", len(sets), err)
	}
	svcs, err := c.WalkServices(ctx, 0)
	if err != nil || len(svcs) != 3 {
		t.Fatalf("services: %d, %v", len(svcs), err)
	}
	l, err := c.WalkModelsV1(ctx, qianfan.ModelListRequest{PageSize: 4})
	if err != nil || !l.Consistent() || len(l.Models) != 7 {
		t.Fatalf("V1 walk: %+v, %v", l, err)
	}
	if _, _, err := c.ListModels(ctx, qianfan.ModelListRequest{}); !qianfan.IsGone(err) {
		t.Errorf("V1 after -v1-off-after 2: %v", err)
	}
	// -refuse-in-use: a version a service runs cannot be deleted through V2.
	_, versions := svcs[0].Refs()
	if _, err := c.DeleteModel(ctx, versions[0]); !qianfan.IsInvalidIDs(err) {
		t.Errorf("in-use delete: %v", err)
	}
	resp, err := http.Post(base+"/_fake/v2-off", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, _, err := c.DescribeCustomModelSets(ctx, "", 0); !qianfan.IsGone(err) {
		t.Errorf("V2 off with -v2-gone 410: %v", err)
	}
	stop()
	f, err := os.Open(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inv, err := qianfantest.ReadInventory(f)
	if err != nil || len(inv.Models) != 7 || len(inv.Services) != 3 {
		t.Fatalf("dump: %v", err)
	}

	// The dump loads back.
	base, stop = start(t, "-inventory", dump)
	defer stop()
	c, _ = qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
		qianfan.WithBaseURL(base))
	d, _, err := c.DescribeModelSet(ctx, inv.Models[0].IDStr)
	if err != nil || d.ModelSetName != inv.Models[0].Name {
		t.Errorf("loaded inventory: %+v, %v", d, err)
	}
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	env := map[string]string{"QIANFAN_ACCESS_KEY": "env-ak", "QIANFAN_SECRET_KEY": "env-sk"}
	var stderr strings.Builder
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-invalid", "13,am-x"},
			func(k string) string { return env[k] }, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	c, err := qianfan.New(qianfan.Credentials{AccessKey: "env-ak", SecretKey: "env-sk"}, qianfan.WithBaseURL(base))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.BatchDeleteModels(ctx, qianfan.IntIDs{12}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.BatchDeleteModels(ctx, qianfan.IntIDs{13}); !qianfan.IsInvalidIDs(err) {
		t.Fatalf("-invalid 13: got %v", err)
	}
	resp, err := http.Post(base+"/_fake/faults", "application/json", strings.NewReader(`{"rate_503":1}`))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST faults: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/_fake/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st qianfantest.Stats
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.IDsDeleted != 1 || st.Calls["ok"] != 1 || st.Calls["500001"] != 1 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
	if strings.Contains(stderr.String(), "env-sk") {
		t.Error("secret in logs")
	}
	http.DefaultClient.CloseIdleConnections()
}
