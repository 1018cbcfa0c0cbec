package deploy_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

const dashboardFile = "grafana/qfpurge.json"

// exportedNames gathers the registry the monitor serves on /metrics, built
// as the worker builds it, against a real Redis whose qfpurge queue holds a
// task (so asynq's queue collector emits its series), after one event of
// each kind the worker observes (so every labelled series exists).
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	client := asynq.NewClientFromRedisClient(rdb)
	if _, err := client.Enqueue(asynq.NewTask("qfpurge:probe", nil), asynq.Queue(asynqlayout.Queue)); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	m := monitor.NewMetrics(rdb, insp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.Call(modelid.KindModel, modelid.IDInt, "ok", 3, time.Second)
	m.Outcome(modelid.KindModel, modelid.IDInt, ledger.StateDeleted, 3)
	m.Split(modelid.KindModel, "bisect")
	m.Retry(modelid.KindModel, "transient")
	m.LimiterWait(time.Millisecond)
	m.Listing(nil, time.Second, nil)
	m.Fleet("paused")
	m.RunEnded(policy.Record{Rule: "r", Mode: policy.ModeRun, Status: policy.StatusBlocked})

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		names[n] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	// The check below is only as good as this list: it must hold the
	// Redis-backed and asynq series, not only the Go runtime's.
	for _, n := range []string{"qfpurge_dead_letters", "qfpurge_deletions_paused", "asynq_queue_latency_seconds", "qfpurge_ids_total"} {
		if !names[n] {
			t.Fatalf("the monitor's registry lacks %s; gathered %d names", n, len(names))
		}
	}
	return names
}

// grafanaVars stands the dashboard's variables in for values PromQL parses.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".*")

// metricNames lists the metric names a PromQL expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := promParser.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					name = m.Value
				}
			}
			if name == "" {
				t.Errorf("%q selects series without naming the metric", expr)
			}
			names = append(names, name)
		}
		return nil
	})
	return names
}

// dashboard is the part of Grafana's dashboard model the checks read.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID          int    `json:"id"`
		Type        string `json:"type"`
		Title       string `json:"title"`
		Description string `json:"description"`
		Datasource  struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// TestDashboard checks the dashboard is one Grafana imports as meant: a
// fixed uid, a Prometheus data source chosen by variable, panels that do
// not overlap on the 24-column grid, and queries that parse.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID != "qfpurge" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["job"] != "query" {
		t.Errorf("variables %v, want datasource and job", vars)
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" || p.Description == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d %q: a title, a description and a query are required", p.ID, p.Title)
		}
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v off the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("panel %q: %q ignores the job variable", p.Title, tg.Expr)
			}
			metricNames(t, grafanaVars.Replace(tg.Expr))
		}
	}
}

// TestKitNamesExportedMetrics: every metric the alert rules and the
// dashboard (panels and variables) select is one the worker exports.
func TestKitNamesExportedMetrics(t *testing.T) {
	exported := exportedNames(t)
	used := map[string][]string{}
	for _, g := range mustGroups(t).Groups {
		for _, r := range g.Rules {
			for _, n := range metricNames(t, r.Expr) {
				used[n] = append(used[n], "alert "+r.Alert)
			}
		}
	}
	d := readDashboard(t)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, n := range metricNames(t, grafanaVars.Replace(tg.Expr)) {
				used[n] = append(used[n], "panel "+p.Title)
			}
		}
	}
	labelValues := regexp.MustCompile(`label_values\((\w+)`)
	for _, v := range d.Templating.List {
		b, _ := json.Marshal(v.Query)
		for _, m := range labelValues.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = append(used[m[1]], "variable "+v.Name)
		}
	}
	if len(used) < 10 {
		t.Fatalf("only %d metric names found in the rules and the dashboard", len(used))
	}
	for n, where := range used {
		if !exported[n] {
			slices.Sort(where)
			t.Errorf("%s (%s) is not a metric the worker exports", n, strings.Join(slices.Compact(where), ", "))
		}
	}
}
