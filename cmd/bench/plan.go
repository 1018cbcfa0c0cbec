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
	Models, Versions, Services int
	Runs                       []planRun
}

// runPlan previews both rules with qfpurge rules against the fake holding the
// account at planQPS, one child process per preview, started through the
// measure role for its peak RSS. The wall time includes that small wrapper's
// start.
func runPlan(ctx context.Context, e *env, sc scale) (planResult, error) {
	r := planResult{Models: sc.PlanModels, Versions: 4, Services: sc.PlanServices}
	if err := e.reset(ctx); err != nil {
		return r, err
	}
	inv := policytest.Account(sc.PlanModels, 4, sc.PlanServices, 1)
	f, err := e.startFake(ctx, "plan-fake", fakeConfig{QPS: planQPS, Inventory: inv})
	if err != nil {
		return r, err
	}
	defer f.Kill()
	file := filepath.Join(e.dir, "plan-schedule.yaml")
	if err := os.WriteFile(file, []byte(planRules), 0o644); err != nil {
		return r, err
	}
	for _, rule := range []string{"ci-versions", "exp-models"} {
		before, err := f.Stats(ctx)
		if err != nil {
			return r, err
		}
		cmd := exec.CommandContext(ctx, e.self, e.rules, "rules", "--schedule", file, "--qps", strconv.Itoa(planQPS), "--redis-url", e.redis.URL(),
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
		fmt.Fprintf(e.log, "plan %s: %s, %d calls\n", rule, pr.Wall.Round(time.Second), sum(pr.Calls))
	}
	return r, nil
}

func (r planResult) rows(t *table) {
	ideal := (r.Models+99)/100 + (r.Services+99)/100
	t.add("plan", "account", fmt.Sprintf("%d models × %d versions, %d services", r.Models, r.Versions, r.Services),
		fmt.Sprintf("ideal read: %d pages of 100", ideal), "", "")
	for _, p := range r.Runs {
		name := "plan " + p.Rule
		listing := p.Calls["/v2/model?Action=DescribeCustomModelSets"] + p.Calls["/v2/service?Action=DescribeServices"]
		detail := p.Calls["/wenxinworkshop/modelrepo/modelDetail"]
		total := sum(p.Calls)
		t.add(name, "API calls: listing pages + detail calls = total", fmt.Sprintf("%d + %d = %d", listing, detail, total),
			fmt.Sprintf("listing %s of ideal; total %s × ideal", ratio(float64(listing)/float64(ideal)), ratio(float64(total)/float64(ideal))),
			"listing = ideal", verdict(listing == ideal))
		t.add(name, "calls refused for QPS (code 18)", itoa(p.Refused), "", "", "")
		floor := time.Duration(float64(total) / planQPS * float64(time.Second))
		t.add(name, fmt.Sprintf("wall time at %d calls/s (process start to exit)", planQPS), dur(p.Wall),
			fmt.Sprintf("%s × calls/QPS (%s)", ratio(p.Wall.Seconds()/floor.Seconds()), dur(floor)), "report", "")
		if p.PeakRSS > 0 {
			mb := float64(p.PeakRSS) / (1 << 20)
			t.add(name, "planning process peak RSS (rusage maxrss)", fmt.Sprintf("%.1f MiB", mb), ratio(mb/200), "≤ 200 MB", verdict(mb <= 200))
		} else {
			t.add(name, "planning process peak RSS", "n/a", "", "≤ 200 MB", "")
		}
		tt := p.Record.Totals
		t.add(name, "plan: considered / delete / keep / protect", fmt.Sprintf("%d / %d / %d / %d", tt.Considered, tt.Delete, tt.Keep, tt.Protect),
			fmt.Sprintf("brute force: %d deletions", p.Brute), "= brute force", verdict(tt.Delete == p.Brute))
	}
}
