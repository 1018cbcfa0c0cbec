package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/policy/policytest"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// planQPS is the fake's cap and the planner's budget in the plan scenario.
const planQPS = 50

// planRules are the rules the plan scenario previews: the two
// acceptance rules.
const planRules = `schedules:
  - name: ci-versions
    cron: "0 5 * * *"
    kind: version
    delete: {name: "ci-*", older_than: 30d}
    keep: {newest: 3}
    limit: {count: 100000, share: 100%}
  - name: exp-models
    cron: "0 5 * * 0"
    kind: model
    delete: {name: "exp-*", older_than: 90d}
    keep: {name: "*-keep"}
    limit: {count: 100000, share: 100%}
`

// planRun is one preview through qfpurge rules.
type planRun struct {
	Rule    string
	Wall    time.Duration
	PeakRSS int64 // bytes, from the child's rusage
	Record  policy.Record
	At      time.Time      // the plan's time, for the brute force
	Calls   map[string]int // fake endpoint → calls during the preview
	Refused int            // answers refused for QPS
	Brute   int            // deletions a brute force computes
}

type planResult struct {
	Name                       string
	QPS                        int
	Models, Versions, Services int
	Runs                       []planRun
	FakeRSS                    int64 // the fake's peak, holding the account
}

// runPlan previews both rules with qfpurge rules against the fake holding the
// account at planQPS, one child process per preview, started through the
// measure role for its peak RSS. The wall time includes that small wrapper's
// start.
func runPlan(ctx context.Context, e *env, sc scale) (planResult, error) {
	return runPlanOf(ctx, e, planResult{Name: "plan", QPS: planQPS, Models: sc.PlanModels, Versions: 4, Services: sc.PlanServices},
		"ci-versions", "exp-models")
}

// runPlan1M previews the model rule over a million models at 500 calls/s
// (10,000 listing pages; at 50 calls/s it would take 3.5 minutes, and the
// version rule's 250,000 detail calls 83 minutes).
func runPlan1M(ctx context.Context, e *env, sc scale) (planResult, error) {
	return runPlanOf(ctx, e, planResult{Name: "plan1m", QPS: 500, Models: sc.Plan1MModels, Versions: 4, Services: sc.Plan1MModels / 25},
		"exp-models")
}

func runPlanOf(ctx context.Context, e *env, r planResult, rules ...string) (planResult, error) {
	if err := e.reset(ctx); err != nil {
		return r, err
	}
	inv := policytest.Account(r.Models, r.Versions, r.Services, 1)
	f, err := e.startFake(ctx, r.Name+"-fake", fakeConfig{QPS: r.QPS, Inventory: inv})
	if err != nil {
		return r, err
	}
	defer f.Kill()
	file := filepath.Join(e.dir, "plan-schedule.yaml")
	if err := os.WriteFile(file, []byte(planRules), 0o644); err != nil {
		return r, err
	}
	for _, rule := range rules {
		before, err := f.Stats(ctx)
		if err != nil {
			return r, err
		}
		cmd := exec.CommandContext(ctx, e.self, e.rules, "rules", "--schedule", file, "--qps", strconv.Itoa(r.QPS), "--redis-url", e.redis.URL(),
			"--qianfan-base-url", f.URL, "preview", rule, "--json", "--summary")
		cmd.Env = append(os.Environ(), roleEnv+"="+roleMeasure,
			"QIANFAN_ACCESS_KEY="+qianfantest.DefaultAccessKey, "QIANFAN_SECRET_KEY="+qianfantest.DefaultSecretKey)
		cmd.SysProcAttr = childAttr()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		t0 := time.Now()
		err = cmd.Run()
		pr := planRun{Rule: rule, Wall: time.Since(t0)}
		if err != nil {
			return r, fmt.Errorf("rules preview %s: %w: %s", rule, err, errb.String())
		}
		if _, v, ok := strings.Cut(errb.String(), maxRSSPrefix); ok {
			pr.PeakRSS, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		var res struct {
			Run  policy.Record
			Plan policy.Plan
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			return r, fmt.Errorf("rules preview %s output: %w", rule, err)
		}
		pr.Record, pr.At = res.Run, res.Plan.At
		after, err := f.Stats(ctx)
		if err != nil {
			return r, err
		}
		pr.Calls = map[string]int{}
		for ep, n := range after.Endpoints {
			if d := n - before.Endpoints[ep]; d > 0 {
				pr.Calls[ep] = d
			}
		}
		pr.Refused = after.Calls["18"] + after.Calls["RequestLimitExceeded"] - before.Calls["18"] - before.Calls["RequestLimitExceeded"]
		if rule == "ci-versions" {
			pr.Brute = len(policytest.CIVersions(inv, pr.At))
		} else {
			pr.Brute = len(policytest.ExpModels(inv, pr.At))
		}
		r.Runs = append(r.Runs, pr)
		fmt.Fprintf(e.log, "%s %s: %s, %d calls\n", r.Name, rule, pr.Wall.Round(time.Second), sum(pr.Calls))
	}
	r.FakeRSS = f.peakRSS()
	return r, nil
}

func (r planResult) rows(t *table) {
	ideal := (r.Models+99)/100 + (r.Services+99)/100
	t.add(r.Name, "account", fmt.Sprintf("%d models × %d versions, %d services", r.Models, r.Versions, r.Services),
		fmt.Sprintf("ideal read: %d pages of 100", ideal), "", "")
	if r.FakeRSS > 0 {
		t.add(r.Name, "the fake's peak RSS, holding the account (VmHWM)", fmt.Sprintf("%.1f MiB", float64(r.FakeRSS)/(1<<20)), "", "report", "")
	}
	limit := 200.0
	if r.Models > 100_000 {
		limit = 300
	}
	for _, p := range r.Runs {
		name := r.Name + " " + p.Rule
		listing := p.Calls["/v2/model?Action=DescribeCustomModelSets"] + p.Calls["/v2/service?Action=DescribeServices"]
		detail := p.Calls["/wenxinworkshop/modelrepo/modelDetail"]
		total := sum(p.Calls)
		t.add(name, "API calls: listing pages + detail calls = total", fmt.Sprintf("%d + %d = %d", listing, detail, total),
			fmt.Sprintf("listing %s of ideal; total %s × ideal", ratio(float64(listing)/float64(ideal)), ratio(float64(total)/float64(ideal))),
			"listing = ideal", verdict(listing == ideal))
		t.add(name, "calls refused for QPS (code 18)", itoa(p.Refused), "", "", "")
		floor := time.Duration(float64(total) / float64(r.QPS) * float64(time.Second))
		t.add(name, fmt.Sprintf("wall time at %d calls/s (process start to exit)", r.QPS), dur(p.Wall),
			fmt.Sprintf("%s × calls/QPS (%s)", ratio(p.Wall.Seconds()/floor.Seconds()), dur(floor)), "report", "")
		if p.PeakRSS > 0 {
			mb := float64(p.PeakRSS) / (1 << 20)
			t.add(name, "planning process peak RSS (rusage maxrss)", fmt.Sprintf("%.1f MiB", mb), ratio(mb/limit),
				fmt.Sprintf("≤ %.0f MiB", limit), verdict(mb <= limit))
		} else {
			t.add(name, "planning process peak RSS", "n/a", "", fmt.Sprintf("≤ %.0f MiB", limit), "")
		}
		tt := p.Record.Totals
		t.add(name, "plan: considered / delete / keep / protect", fmt.Sprintf("%d / %d / %d / %d", tt.Considered, tt.Delete, tt.Keep, tt.Protect),
			fmt.Sprintf("brute force: %d deletions", p.Brute), "= brute force", verdict(tt.Delete == p.Brute))
	}
}
