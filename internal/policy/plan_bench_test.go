package policy_test

import (
	"context"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/policy/policytest"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// heapSource measures the live heap every few pages of the model walk.
type heapSource struct {
	policy.PagedSource
	every, pages int
	base, peak   int64
}

func (s *heapSource) WalkModels(ctx context.Context, fn func([]inventory.Model) error) error {
	return s.PagedSource.WalkModels(ctx, func(page []inventory.Model) error {
		if s.pages++; s.pages%s.every == 0 {
			s.peak = max(s.peak, liveHeap()-s.base)
		}
		return fn(page)
	})
}

func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkPlanMemory plans the bench's plan1m rule (exp-models) over
// 100,000 models × 4 versions and 4,000 services held by a fake in this
// process, and reports the planner's live heap at its largest (measured
// every 50 pages and at the end, less what was live before), in bytes per
// model. A process's peak RSS is about twice its live heap (GOGC=100) plus
// the runtime's own. Profile it with
//
//	go test -run '^$' -bench PlanMemory -benchtime 1x -memprofile mem.out ./internal/policy
func BenchmarkPlanMemory(b *testing.B) {
	const models = 100_000
	fake := qianfantest.New(qianfantest.Config{Inventory: policytest.Account(models, 4, models/25, 1)})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	qc, err := qianfan.New(qianfan.Credentials{AccessKey: qianfantest.DefaultAccessKey, SecretKey: qianfantest.DefaultSecretKey},
		qianfan.WithBaseURL(srv.URL), qianfan.WithQPS(0, 0))
	if err != nil {
		b.Fatal(err)
	}
	r := rule(b, "exp-models", modelid.KindModel, "delete: {name: \"exp-*\", older_than: 90d}\nkeep: {name: \"*-keep\"}\nlimit: {count: 100000, share: 100%}")
	var peak int64
	for b.Loop() {
		src := &heapSource{PagedSource: policy.QianfanSource(qc).(policy.PagedSource), every: 50, base: liveHeap()}
		p, err := policy.NewPlan(context.Background(), src, r, policy.PlanOptions{Now: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		peak = max(peak, src.peak, liveHeap()-src.base)
		if p.Totals.Considered != models {
			b.Fatalf("considered %d models, want %d", p.Totals.Considered, models)
		}
	}
	b.ReportMetric(float64(peak)/models, "live-B/model")
	b.ReportMetric(float64(peak)/(1<<20), "live-MiB")
}
