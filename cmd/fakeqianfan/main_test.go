package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/qfpurge/qfpurge/internal/fakeqianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"))
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
	var st fakeqianfan.Stats
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
