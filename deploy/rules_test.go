package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"
)

const (
	rulesFile     = "prometheus/qfpurge-alerts.yaml"
	rulesTestFile = "prometheus/qfpurge-alerts.test.yaml"
)

var promParser = parser.NewParser(parser.Options{})

// TestAlertRulesParse loads the rules as Prometheus does (rulefmt, unknown
// fields refused, expressions and templates parsed) and checks each alert
// says how bad it is and what happened.
func TestAlertRulesParse(t *testing.T) {
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promParser, promslog.NewNopLogger())
	if len(errs) > 0 {
		t.Fatalf("%s: %v", rulesFile, errs)
	}
	var names []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: a summary and a description are required", r.Alert)
			}
		}
	}
	want := []string{"QfpurgeBacklogOld", "QfpurgeDeadLettersGrowing", "QfpurgeDeletionsPaused", "QfpurgeQianfanErrors",
		"QfpurgeQueueMetricsDown", "QfpurgeRuleRunBlockedOrFailed"}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("alerts %q, want %q", names, want)
	}
}

// ruleTests is promtool's unit-test file format, the part of it used here;
// decoding is strict, so a test using more of the format fails loudly
// instead of being ignored.
type ruleTests struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	Tests              []struct {
		Name        string         `yaml:"name"`
		Interval    model.Duration `yaml:"interval"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTests []struct {
			EvalTime  model.Duration `yaml:"eval_time"`
			Alertname string         `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertRuleUnitTests runs the rules' unit tests as `promtool test rules`
// does: Prometheus's rule manager loads the rule file, evaluates every group
// each evaluation_interval over the input series (promqltest's lazy loader
// and PromQL engine), and the firing alerts at each eval_time, with their
// labels and rendered annotations, must be exactly the expected ones.
func TestAlertRuleUnitTests(t *testing.T) {
	f, err := os.Open(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var rt ruleTests
	if err := dec.Decode(&rt); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	if len(rt.Tests) == 0 {
		t.Fatal("no tests")
	}
	var files []string
	for _, rf := range rt.RuleFiles {
		files = append(files, filepath.Join(filepath.Dir(rulesTestFile), rf))
	}
	if !slices.Contains(files, rulesFile) {
		t.Fatalf("%s does not test %s", rulesTestFile, rulesFile)
	}
	fires := map[string]bool{}
	for _, tc := range rt.Tests {
		t.Run(tc.Name, func(t *testing.T) {
			var load strings.Builder
			fmt.Fprintf(&load, "load %s\n", time.Duration(tc.Interval))
			for _, s := range tc.InputSeries {
				fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
			}
			suite, err := promqltest.NewLazyLoader(load.String(), promqltest.LazyLoaderOpts{})
			if err != nil {
				t.Fatal(err)
			}
			defer suite.Close()
			interval := time.Duration(rt.EvaluationInterval)
			suite.SubqueryInterval = interval
			m := rules.NewManager(&rules.ManagerOptions{
				QueryFunc:    rules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
				AppendableV2: suite.Storage(),
				Context:      context.Background(),
				NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
				Logger:       promslog.NewNopLogger(),
				Parser:       promParser,
			})
			groups, errs := m.LoadGroups(interval, labels.EmptyLabels(), "", nil, false, files...)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			var alerting []*rules.AlertingRule
			for _, g := range groups {
				for _, r := range g.Rules() {
					if ar, ok := r.(*rules.AlertingRule); ok {
						ar.SetRestored(true)
						alerting = append(alerting, ar)
					}
				}
			}
			checks := tc.AlertRuleTests
			sort.SliceStable(checks, func(i, j int) bool { return checks[i].EvalTime < checks[j].EvalTime })
			start := time.Unix(0, 0).UTC()
			end := start.Add(time.Duration(checks[len(checks)-1].EvalTime))
			next := 0
			for ts := start; !ts.After(end); ts = ts.Add(interval) {
				suite.WithSamplesTill(ts, func(err error) {
					if err != nil {
						t.Fatal(err)
					}
					for _, g := range groups {
						g.Eval(suite.Context(), ts)
						for _, r := range g.Rules() {
							if r.LastError() != nil {
								t.Fatalf("rule %s at %s: %v", r.Name(), ts.Sub(start), r.LastError())
							}
						}
					}
				})
				// As promtool: an eval_time is checked against the
				// evaluation at or just before it.
				for next < len(checks) && time.Duration(checks[next].EvalTime) < ts.Add(interval).Sub(start) {
					c := checks[next]
					next++
					if len(c.ExpAlerts) > 0 {
						fires[c.Alertname] = true
					}
					var got, want []string
					found := false
					for _, ar := range alerting {
						if ar.Name() != c.Alertname {
							continue
						}
						found = true
						for _, a := range ar.ActiveAlerts() {
							if a.State == rules.StateFiring {
								got = append(got, a.Labels.String()+" "+a.Annotations.String())
							}
						}
					}
					if !found {
						t.Fatalf("no alert %s in %s", c.Alertname, rulesFile)
					}
					for _, e := range c.ExpAlerts {
						l := map[string]string{labels.AlertName: c.Alertname}
						for k, v := range e.ExpLabels {
							l[k] = v
						}
						want = append(want, labels.FromMap(l).String()+" "+labels.FromMap(e.ExpAnnotations).String())
					}
					slices.Sort(got)
					slices.Sort(want)
					if d := cmp.Diff(want, got); d != "" {
						t.Errorf("%s at %s: firing alerts differ (-want +got):\n%s", c.Alertname, c.EvalTime, d)
					}
				}
			}
		})
	}
	// Every alert has a case where it fires.
	for _, g := range mustGroups(t).Groups {
		for _, r := range g.Rules {
			if !fires[r.Alert] {
				t.Errorf("alert %s has no unit test where it fires", r.Alert)
			}
		}
	}
}

func mustGroups(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	g, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promParser, promslog.NewNopLogger())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return g
}
