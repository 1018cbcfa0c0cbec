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
	// Progress, when set, is called once the inventory is read (done 0)
	// and after each version detail read, with how many of total are done.
	// Calls are serialised.
	Progress func(done, total int)
}

// NewPlan computes what rule r does to the account now: it takes a
// complete snapshot, reads version details only for the models NeedsDetail
// names, and lets Evaluate decide. Previews print its result and runs
// enqueue exactly its deletions. Any listing or detail call that fails
// fails the plan: nothing is deleted on a partial view.
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
	snap, err := src.Snapshot(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("read the inventory: %w", err)
	}
	var need []string
	for i := range snap.Models {
		if NeedsDetail(&r, &snap.Models[i], o.Now) {
			need = append(need, snap.Models[i].ID)
		}
	}
	progress := o.Progress
	if progress == nil {
		progress = func(int, int) {}
	}
	progress(0, len(need))
	details, vanished, err := fetchDetails(ctx, src, need, o.Concurrency, progress)
	if err != nil {
		return Plan{}, err
	}
	if len(vanished) > 0 {
		// Judged on its listing alone, a gone model's versions would be
		// ranked unknown; leave them out instead.
		keep := snap.Models[:0:0]
		for _, m := range snap.Models {
			if !vanished[m.ID] {
				keep = append(keep, m)
			}
		}
		snap.Models = keep
	}
	p, err := Evaluate(&r, snap, details, o.Now)
	if err != nil {
		return Plan{}, err
	}
	p.Totals.DetailCalls, p.Totals.Vanished = len(need), len(vanished)
	return p, nil
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
