package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Source is where a plan reads the account.
type Source interface {
	// Snapshot lists every model with its versions' IDs and every custom
	// service, each listing complete or an error.
	Snapshot(ctx context.Context) (*inventory.Snapshot, error)
	// Versions returns every version of a model (am- ID) with its creation
	// time; ErrModelGone when the model no longer exists.
	Versions(ctx context.Context, model string) ([]inventory.Version, error)
}

// PagedSource is a Source that also hands the listing over a page at a
// time: NewPlan then holds one page, the services and the plan's items,
// not the whole account.
type PagedSource interface {
	Source
	// Services lists every custom service.
	Services(ctx context.Context) ([]inventory.Service, error)
	// WalkModels calls fn with each page of the model listing, in order;
	// fn may not keep the page. fn's error ends the walk.
	WalkModels(ctx context.Context, fn func([]inventory.Model) error) error
}

// ErrModelGone: the model was deleted since the listing.
var ErrModelGone = errors.New("model not found")

// QianfanSource reads through the Qianfan client: V2 model and service
// listings (pages of 100) and V1 modelDetail for version times, which no
// listing gives. Once V1 answers as gone, version times come from V2: one
// DescribeModelSet and one DescribeModel per version.
func QianfanSource(c *qianfan.Client) Source { return &qianfanSource{c: c} }

type qianfanSource struct {
	c      *qianfan.Client
	v1Gone atomic.Bool
}

func (s *qianfanSource) Snapshot(ctx context.Context) (*inventory.Snapshot, error) {
	return inventory.Read(ctx, s.c, inventory.SourceV2|inventory.SourceServices)
}

func (s *qianfanSource) Services(ctx context.Context) ([]inventory.Service, error) {
	return inventory.ReadServices(ctx, s.c)
}

func (s *qianfanSource) WalkModels(ctx context.Context, fn func([]inventory.Model) error) error {
	return inventory.WalkModels(ctx, s.c, fn)
}

func (s *qianfanSource) Versions(ctx context.Context, model string) ([]inventory.Version, error) {
	if s.v1Gone.Load() {
		return s.versionsV2(ctx, model)
	}
	d, _, err := s.c.ModelDetail(ctx, modelid.StringID(model))
	switch {
	case qianfan.IsGone(err):
		s.v1Gone.Store(true)
		return s.versionsV2(ctx, model)
	case qianfan.IsInvalidIDs(err):
		// A read's "param invalid" is how V1 answers an unknown ID.
		return nil, fmt.Errorf("%w: %s: %v", ErrModelGone, model, err)
	case err != nil:
		return nil, fmt.Errorf("versions of %s (V1 modelDetail): %w", model, err)
	}
	out := make([]inventory.Version, 0, len(d.Versions))
	for _, v := range d.Versions {
		out = append(out, inventory.Version{ID: v.ModelVersionIDStr, IntID: v.ModelVersionID, Model: model,
			Version: v.Version, State: v.State, Created: v.CreateTime})
	}
	return out, nil
}

// versionsV2 reads a model's versions through V2. Not finding the model or
// any one of its versions leaves the whole model out of the plan (as gone):
// ranks taken over a partial list could spare the wrong versions.
func (s *qianfanSource) versionsV2(ctx context.Context, model string) ([]inventory.Version, error) {
	ms, _, err := s.c.DescribeModelSet(ctx, model)
	if err != nil {
		return nil, v2ReadError(model, "DescribeModelSet", err)
	}
	out := make([]inventory.Version, 0, len(ms.ModelIDs))
	for _, id := range ms.ModelIDs {
		m, _, err := s.c.DescribeModel(ctx, id)
		if err != nil {
			return nil, v2ReadError(model, "DescribeModel "+id, err)
		}
		out = append(out, inventory.Version{ID: m.ModelID, Model: model, Version: m.ModelName, State: m.Status, Created: m.CreateTime})
	}
	return out, nil
}

// v2ReadError makes a V2 "not found" or rejected ID ErrModelGone, which
// leaves the model out of the plan; anything else fails the plan.
func v2ReadError(model, call string, err error) error {
	var qe *qianfan.Error
	if qianfan.IsInvalidIDs(err) || (errors.As(err, &qe) && qe.HTTPStatus == http.StatusNotFound) {
		return fmt.Errorf("%w: %s (V2 %s): %v", ErrModelGone, model, call, err)
	}
	return fmt.Errorf("versions of %s (V2 %s): %w", model, call, err)
}

// PlanOptions tune NewPlan.
type PlanOptions struct {
	// Now is the time ages are measured from. Defaults to time.Now().
	Now time.Time
	// Concurrency is how many detail calls run at once (the client's QPS
	// limiter paces them). Defaults to 4.
	Concurrency int
	// Progress, when set, is called with how many of total version detail
	// reads are done: after each, and before the reads of each page of the
	// listing (the first page always), where total grows by that page's.
	// Calls are serialised.
	Progress func(done, total int)
}

// NewPlan computes what rule r does to the account now: it walks the
// listing a page at a time, reads version details only for the models
// NeedsDetail names, and decides each model as Evaluate would, keeping only
// the plan's items. Previews print its result and runs enqueue exactly its
// deletions. Any listing or detail call that fails fails the plan: nothing
// is deleted on a partial view.
func NewPlan(ctx context.Context, src Source, r Rule, o PlanOptions) (Plan, error) {
	if err := r.ready(); err != nil {
		return Plan{}, err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	progress := o.Progress
	if progress == nil {
		progress = func(int, int) {}
	}
	taken, services, walk, err := listing(ctx, src)
	if err != nil {
		return Plan{}, fmt.Errorf("read the inventory: %w", err)
	}
	e, err := newEvaluation(&r, taken, services, o.Now)
	if err != nil {
		return Plan{}, err
	}
	var (
		done, total, vanished int
		detailErr             error
		first                 = true
	)
	err = walk(func(page []inventory.Model) error {
		var need []string
		for i := range page {
			if NeedsDetail(&r, &page[i], o.Now) {
				need = append(need, page[i].ID)
			}
		}
		total += len(need)
		if len(need) > 0 || first {
			progress(done, total)
		}
		first = false
		details, gone, err := fetchDetails(ctx, src, need, o.Concurrency, func(d, _ int) { progress(done+d, total) })
		if err != nil {
			detailErr = err
			return err
		}
		done += len(need)
		vanished += len(gone)
		for i := range page {
			// Judged on its listing alone, a gone model's versions would be
			// ranked unknown; leave them out instead.
			if !gone[page[i].ID] {
				e.add(&page[i], details[page[i].ID])
			}
		}
		return nil
	})
	switch {
	case detailErr != nil:
		return Plan{}, detailErr
	case err != nil:
		return Plan{}, fmt.Errorf("read the inventory: %w", err)
	}
	p := e.finish()
	p.Totals.DetailCalls, p.Totals.Vanished = total, vanished
	return p, nil
}

// listing returns when the read started, the services and a walk over the
// models: page by page from a PagedSource, else one snapshot as one page.
func listing(ctx context.Context, src Source) (time.Time, []inventory.Service, func(func([]inventory.Model) error) error, error) {
	if ps, ok := src.(PagedSource); ok {
		taken := time.Now()
		svcs, err := ps.Services(ctx)
		return taken, svcs, func(fn func([]inventory.Model) error) error { return ps.WalkModels(ctx, fn) }, err
	}
	snap, err := src.Snapshot(ctx)
	if err != nil {
		return time.Time{}, nil, nil, err
	}
	return snap.Taken, snap.Services, func(fn func([]inventory.Model) error) error { return fn(snap.Models) }, nil
}

// fetchDetails reads the versions of models with n calls at once; the
// first failure stops the rest.
func fetchDetails(ctx context.Context, src Source, models []string, n int, progress func(done, total int)) (map[string][]inventory.Version, map[string]bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		details  = make(map[string][]inventory.Version, len(models))
		vanished = map[string]bool{}
		firstErr error
		done     int
		wg       sync.WaitGroup
	)
	next := make(chan string)
	for range min(n, len(models)) {
		wg.Go(func() {
			for id := range next {
				vs, err := src.Versions(ctx, id)
				mu.Lock()
				switch {
				case errors.Is(err, ErrModelGone):
					vanished[id] = true
				case err != nil:
					if firstErr == nil {
						firstErr = fmt.Errorf("read version details: %w", err)
						cancel()
					}
				default:
					if vs == nil {
						vs = []inventory.Version{}
					}
					details[id] = vs
				}
				if err == nil || errors.Is(err, ErrModelGone) {
					done++
					progress(done, len(models))
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, id := range models {
		select {
		case next <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return details, vanished, firstErr
}
