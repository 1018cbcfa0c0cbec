package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/policy"
)

var statusNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// addEvents writes n events of one outcome to qfpurge:events, ago before
// statusNow, as the ledger writes them (entry IDs carry the time).
func addEvents(t *testing.T, rdb *redis.Client, ago time.Duration, outcome string, n int, message string) {
	t.Helper()
	at := statusNow.Add(-ago).UnixMilli()
	for i := range n {
		id := ""
		if outcome != "paused" && outcome != "resumed" && outcome != "switched" {
			id = fmt.Sprint(1000 + i)
		}
		err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: ledger.EventStream, ID: fmt.Sprintf("%d-%d", at, i),
			Values: map[string]any{"outcome": outcome, "id": id, "kind": "model", "id_type": "int", "message": message}}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// failingSource makes every plan fail, so a rule run ends failed with this
// error in its record.
type failingSource struct{}

func (failingSource) Snapshot(context.Context) (*inventory.Snapshot, error) {
	return nil, errors.New(`listing refused <script>alert("run")</script>`)
}

func (failingSource) Versions(context.Context, string) ([]inventory.Version, error) {
	return nil, errors.New("unused")
}

func row(state string, hour, day int) string {
	return fmt.Sprintf(`<tr><td>%s</td><td class="num">%d</td><td class="num">%d</td></tr>`, state, hour, day)
}

func TestStatusPage(t *testing.T) {
	t.Parallel()
	token := "status-token-0123456789"
	b := setup(t, monitor.Config{Token: token, QianfanAPI: fleet.Auto, Now: func() time.Time { return statusNow }})
	ctx := context.Background()
	auth := []string{"Authorization", "Bearer " + token}

	code, page := get(t, b.base+"/status", auth...)
	if code != 200 || !strings.Contains(page, "Deletions running.") || !strings.Contains(page, row("deleted", 0, 0)) ||
		!strings.Contains(page, "No run or preview is recorded.") {
		t.Fatalf("empty fleet: %d\n%s", code, page)
	}

	// The fleet paused by hand with a reason holding markup; V1 gone.
	if _, err := fleet.NewPauseStore(b.rdb).PauseManual(ctx, `revoked <img src=x onerror="alert(1)">`); err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.NewAPIModeStore(b.rdb, fleet.Auto).Switch(ctx, "V1 gone: 336101 <b>"); err != nil {
		t.Fatal(err)
	}
	addEvents(t, b.rdb, 25*time.Hour, "deleted", 4, "")
	addEvents(t, b.rdb, 23*time.Hour, "protected", 1, "")
	addEvents(t, b.rdb, 5*time.Hour, "deleted", 5, "")
	addEvents(t, b.rdb, 2*time.Hour, "paused", 1, "unknown access key <x>")
	addEvents(t, b.rdb, 30*time.Minute, "dead", 2, "param invalid")
	addEvents(t, b.rdb, 10*time.Minute, "deleted", 3, "")
	pipe := b.rdb.Pipeline()
	for _, id := range []int64{404404, 404405} {
		deadletter.Append(ctx, pipe, deadletter.Entry{Kind: modelid.KindModel, ID: modelid.IntID(id), Code: 500001, Message: "param invalid"})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(b.rdb).Enqueue(asynq.NewTask("qfpurge:probe", nil), asynq.Queue(asynqlayout.Queue)); err != nil {
		t.Fatal(err)
	}
	runner := policy.NewRunner(b.rdb, failingSource{}, nil, policy.Config{Now: func() time.Time { return statusNow }})
	rule := policy.Rule{Name: "ci-versions", Kind: modelid.KindVersion, Delete: []policy.Selector{{Names: []string{"ci-*"}}}}
	if _, _, err := runner.Execute(ctx, rule, policy.Options{Mode: policy.ModeRun, Trigger: "schedule"}); err == nil {
		t.Fatal("a run over a failing source did not fail")
	}

	code, page = get(t, b.base+"/status", auth...)
	if code != 200 {
		t.Fatalf("status %d\n%s", code, page)
	}
	for _, want := range []string{
		`<div class="banner"><b>Deletions paused</b>`,
		`revoked &lt;img src=x onerror=&#34;alert(1)&#34;&gt;`,
		"only <code>pause lift</code> resumes it",
		`<div class="n">v2</div>`, "configured auto; switched to V2", "V1 gone: 336101 &lt;b&gt;",
		`<div class="muted">Dead letters</div>` + "\n" + `<div class="n">2</div>`,
		`<div class="muted">Waiting</div><div class="n">1</div>`,
		row("deleted", 3, 8), row("dead", 2, 2), row("protected", 0, 1), row("presumed", 0, 0),
		"(12 entries read)", "unknown access key &lt;x&gt;",
		"ci-versions", `<td class="st-failed">failed</td>`, "listing refused &lt;script&gt;alert(&#34;run&#34;)&lt;/script&gt;",
		`href="/monitoring/queues/qfpurge?status=archived"`, "error rate",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>", "<img src=x", "Cut short", "Deletions running."} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
}

// TestStatusPageSaysWhenCut: the page reads at most StatusEventCap events
// and then says how far back it counted.
func TestStatusPageSaysWhenCut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cap       int
		want      []string
		hour, day int
	}{
		// 5 reach back 30 minutes: both windows are cut.
		{5, []string{"Cut short: this page reads at most 5 events", "2026-12-01 11:30:00Z", "both windows count"}, 3, 3},
		// 7 reach past the hour (the fleet event 2 hours ago): the hour is whole.
		{7, []string{"Cut short: this page reads at most 7 events", "2026-12-01 10:30:00Z", "the 24-hour window counts only"}, 3, 3},
		// 12 are exactly the day's: nothing is cut.
		{12, nil, 3, 8},
	} {
		t.Run(fmt.Sprint(tc.cap), func(t *testing.T) {
			t.Parallel()
			b := setup(t, monitor.Config{StatusEventCap: tc.cap, Now: func() time.Time { return statusNow }})
			addEvents(t, b.rdb, 25*time.Hour, "deleted", 4, "")
			addEvents(t, b.rdb, 5*time.Hour, "deleted", 5, "")
			addEvents(t, b.rdb, 90*time.Minute, "paused", 1, "x")
			addEvents(t, b.rdb, 70*time.Minute, "resumed", 1, "x")
			addEvents(t, b.rdb, 30*time.Minute, "dead", 2, "x")
			addEvents(t, b.rdb, 10*time.Minute, "deleted", 3, "")
			_, page := get(t, b.base+"/status")
			for _, w := range tc.want {
				if !strings.Contains(page, w) {
					t.Errorf("the page lacks %q", w)
				}
			}
			if tc.want == nil && strings.Contains(page, "Cut short") {
				t.Error("the page says it was cut though it read the whole day")
			}
			if !strings.Contains(page, row("deleted", tc.hour, tc.day)) {
				t.Errorf("deleted row: want hour %d, day %d:\n%s", tc.hour, tc.day, regexp.MustCompile(`<tr><td>deleted</td>.*`).FindString(page))
			}
		})
	}
}

// TestStatusPageProtected: the status page sits behind the same
// credentials, Host check and cross-origin protection as asynqmon.
func TestStatusPageProtected(t *testing.T) {
	t.Parallel()
	b := setup(t, monitor.Config{User: "ops", Password: "a-long-password"})
	port := b.mon.Addr()[strings.LastIndex(b.mon.Addr(), ":"):]
	for _, tc := range []struct {
		method string
		hdr    map[string]string
		want   int
	}{
		{"GET", nil, http.StatusUnauthorized},
		{"GET", map[string]string{"Authorization": "Basic b3BzOmEtbG9uZy1wYXNzd29yZA=="}, 200},
		{"GET", map[string]string{"Authorization": "Basic b3BzOmEtbG9uZy1wYXNzd29yZA==", "Host": "evil.example" + port}, http.StatusMisdirectedRequest},
		{"POST", map[string]string{"Authorization": "Basic b3BzOmEtbG9uZy1wYXNzd29yZA==", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
	} {
		if code := do(t, tc.method, b.base+"/status", tc.hdr); code != tc.want {
			t.Errorf("%s /status %v: %d, want %d", tc.method, tc.hdr, code, tc.want)
		}
	}
	req, _ := http.NewRequest("GET", b.base+"/status", nil)
	req.SetBasicAuth("ops", "a-long-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
}

// TestStatusPageRedisDown: with Redis gone the page still answers and says
// what it could not read.
func TestStatusPageRedisDown(t *testing.T) {
	t.Parallel()
	b := setup(t, monitor.Config{})
	b.redis.Stop()
	code, page := get(t, b.base+"/status")
	if code != 200 || !strings.Contains(page, "Cannot read the fleet's pause") || !strings.Contains(page, "The event stream could not be read") {
		t.Errorf("%d\n%s", code, page)
	}
}
