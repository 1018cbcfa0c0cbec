package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// stubSource serves a snapshot and details from memory and counts calls.
type stubSource struct {
	snap    *inventory.Snapshot
	details map[string][]inventory.Version
	fail    map[string]error
	mu      sync.Mutex
	asked   []string
}

func (s *stubSource) Snapshot(context.Context) (*inventory.Snapshot, error) {
	cp := *s.snap
	cp.Models = slices.Clone(s.snap.Models)
	return &cp, nil
}

func (s *stubSource) Versions(_ context.Context, model string) ([]inventory.Version, error) {
	s.mu.Lock()
	s.asked = append(s.asked, model)
	s.mu.Unlock()
	if err := s.fail[model]; err != nil {
		return nil, err
	}
	return s.details[model], nil
}

func TestNewPlanAsksOnlyWhatItNeeds(t *testing.T) {
	t.Parallel()
	snap, details := versionSnap()
	src := &stubSource{snap: snap, details: details}
	r := parseRule(t, modelid.KindVersion, "delete: {name: \"ci-*\", older_than: 30d}\nkeep: {newest: 3}\nlimit: {share: 100%}")
	var seen [][2]int
	p, err := NewPlan(context.Background(), src, r, PlanOptions{Now: now, Progress: func(done, total int) {
		seen = append(seen, [2]int{done, total})
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := [][2]int{{0, 2}, {1, 2}, {2, 2}}; !slices.Equal(seen, want) {
		t.Errorf("progress %v, want %v", seen, want)
	}
	slices.Sort(src.asked)
	if !slices.Equal(src.asked, []string{"am-ci", "am-whole"}) || p.Totals.DetailCalls != 2 {
		t.Errorf("asked %v (%d counted), want the two ci models", src.asked, p.Totals.DetailCalls)
	}
	if p.Totals.Delete != 1 {
		t.Errorf("totals %+v", p.Totals)
	}
}

func TestNewPlanVanishedModelIsLeftOut(t *testing.T) {
	t.Parallel()
	snap, details := versionSnap()
	src := &stubSource{snap: snap, details: details, fail: map[string]error{"am-whole": fmt.Errorf("%w: am-whole", ErrModelGone)}}
	r := parseRule(t, modelid.KindVersion, "delete: {name: \"ci-*\", older_than: 30d}\nkeep: {newest: 3}\nlimit: {share: 100%}")
	p, err := NewPlan(context.Background(), src, r, PlanOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if p.Totals.Vanished != 1 || p.Totals.Considered != 9 {
		t.Errorf("totals %+v, want one vanished model and its versions not considered", p.Totals)
	}
	for _, it := range p.Items {
		if it.Model == "am-whole" {
			t.Errorf("item of a vanished model: %+v", it)
		}
	}
}

func TestNewPlanFailsOnADetailError(t *testing.T) {
	t.Parallel()
	snap, details := versionSnap()
	boom := errors.New("HTTP 503")
	src := &stubSource{snap: snap, details: details, fail: map[string]error{"am-ci": boom}}
	r := parseRule(t, modelid.KindVersion, "delete: {name: \"ci-*\", older_than: 30d}\nkeep: {newest: 3}")
	if _, err := NewPlan(context.Background(), src, r, PlanOptions{Now: now}); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the detail call's", err)
	}
}
