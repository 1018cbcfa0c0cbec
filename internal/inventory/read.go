package inventory

import (
	"golang.org/x/sync/errgroup"

	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Source says which listings a read takes.
type Source int

// The sources. V2 pages by marker, which deletions during the walk cannot
// disturb: it proves the absence of string model and version IDs. V1 pages
// by offset and is the only source of int model IDs; it proves absence only
// when the walk was a consistent snapshot (nothing created or deleted
// meanwhile), and otherwise still teaches int↔string pairs.
const (
	SourceV2 Source = 1 << iota
	SourceV1
	// SourceServices also lists what uses models: the custom services of
	// both protocol versions and the batch inference tasks not yet ended
	// (V2). They are read before the models, so that a version they name
	// which still exists is in the model listing.
	SourceServices
	// SourceV1Versions also reads every model's V1 detail (one call per
	// model) for its versions' int IDs: the only source of them, needed to
	// delete int version IDs through V2 once V1 is gone.
	SourceV1Versions
)

// Read lists what src asks for, each listing complete or the read fails.
// Taken is the time the read started.
func Read(ctx context.Context, c *qianfan.Client, src Source) (*Snapshot, error) {
	s := &Snapshot{Taken: time.Now()}
	byID := map[string]int{}
	steps := []struct {
		on   Source
		read func() error
	}{
		{SourceServices, func() error { return s.readServices(ctx, c) }},
		{SourceV2, func() error { return s.readV2(ctx, c, byID) }},
		{SourceV1, func() error { return s.readV1(ctx, c, byID, src&SourceV2 != 0) }},
		{SourceV1Versions, func() error { return s.readVersions(ctx, c) }},
	}
	for _, step := range steps {
		if src&step.on == 0 {
			continue
		}
		if err := step.read(); err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
	}
	s.index()
	return s, nil
}

// readV2 walks V2's model sets: string IDs of models and their versions.
func (s *Snapshot) readV2(ctx context.Context, c *qianfan.Client, byID map[string]int) error {
	err := WalkModels(ctx, c, func(page []Model) error {
		for _, m := range page {
			byID[m.ID] = len(s.Models)
			s.Models = append(s.Models, m)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.Decides = append(s.Decides, Form{modelid.KindModel, modelid.IDString}, Form{modelid.KindVersion, modelid.IDString})
	return nil
}

// WalkModels lists every model through V2, a page of 100 at a time, for
// readers that keep less than the whole listing (a rule's plan). fn's error
// ends the walk; any failed page fails it. The page is reused: fn must not
// keep it (its elements it may).
func WalkModels(ctx context.Context, c *qianfan.Client, fn func([]Model) error) error {
	var ms []Model
	return c.WalkCustomModelSetPages(ctx, 100, func(sets []qianfan.ModelSet) error {
		ms = ms[:0]
		for _, m := range sets {
			ms = append(ms, Model{ID: m.ModelSetID, Name: m.ModelSetName, Type: m.ModelType, Created: m.CreateTime, Versions: m.ModelIDs})
		}
		return fn(ms)
	})
}

// ReadServices lists every custom service (V2).
func ReadServices(ctx context.Context, c *qianfan.Client) ([]Service, error) {
	// Services and tasks are walked at once (see WalkServices).
	var svcs []qianfan.V2Service
	var tasks []qianfan.BatchTask
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		svcs, err = c.WalkServices(gctx, 100)
		return err
	})
	g.Go(func() (err error) {
		tasks, err = c.WalkBatchInferenceTasks(gctx, 100, qianfan.TaskActiveStates...)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]Service, 0, len(svcs)+len(tasks))
	for _, v := range svcs {
		models, versions := v.Refs()
		out = append(out, Service{Kind: KindService, ID: v.ServiceID, Name: v.Name, Status: v.RunStatus,
			Protocol: v.ProtocolVersion, Models: models, Versions: versions})
	}
	for _, t := range tasks {
		// The filter is the server's; an ended task it returns anyway uses nothing.
		if !t.Active() || t.ModelID == "" {
			continue
		}
		u := Service{Kind: KindBatchTask, ID: t.TaskID, Name: t.Name, Status: t.RunStatus}
		if models, versions := (qianfan.V2Service{ModelID: t.ModelID}).Refs(); len(models)+len(versions) > 0 {
			u.Models, u.Versions = models, versions
		}
		out = append(out, u)
	}
	return out, nil
}

// readV1 walks V1's model list for the int IDs. With V2 read too, a model
// only V1 saw (created after V2's walk passed its place) gives its pair but
// does not count as present.
func (s *Snapshot) readV1(ctx context.Context, c *qianfan.Client, byID map[string]int, withV2 bool) error {
	l, err := c.WalkModelsV1(ctx, qianfan.ModelListRequest{PageSize: 100})
	if err != nil {
		return err
	}
	for _, m := range l.Models {
		switch i, ok := byID[m.ModelIDStr]; {
		case ok:
			s.Models[i].IntID = m.ModelID
		case withV2:
			s.addPair(modelid.KindModel, m.ModelID, m.ModelIDStr)
		default:
			byID[m.ModelIDStr] = len(s.Models)
			s.Models = append(s.Models, Model{ID: m.ModelIDStr, IntID: m.ModelID, Name: m.ModelName, Type: v1Type(m.ModelType), Created: m.CreateTime})
		}
	}
	if l.Consistent() {
		s.Decides = append(s.Decides, Form{modelid.KindModel, modelid.IDInt})
		if !withV2 {
			s.Decides = append(s.Decides, Form{modelid.KindModel, modelid.IDString})
		}
	}
	return nil
}

// readVersions reads every model's V1 detail for its versions' int IDs.
func (s *Snapshot) readVersions(ctx context.Context, c *qianfan.Client) error {
	for _, m := range s.Models {
		d, _, err := c.ModelDetail(ctx, modelid.StringID(m.ID))
		if err != nil {
			return fmt.Errorf("versions of %s: %w", m.ID, err)
		}
		for _, v := range d.Versions {
			s.addPair(modelid.KindVersion, v.ModelVersionID, v.ModelVersionIDStr)
		}
	}
	return nil
}

// readServices walks V2's custom services of both protocol versions and
// the batch inference tasks that have not ended.
func (s *Snapshot) readServices(ctx context.Context, c *qianfan.Client) error {
	svcs, err := ReadServices(ctx, c)
	s.Services = append(s.Services, svcs...)
	return err
}

// addPair remembers an int↔string pair seen outside Models.
func (s *Snapshot) addPair(k modelid.Kind, intID int64, strID string) {
	if intID == 0 || strID == "" {
		return
	}
	if s.extraPairs == nil {
		s.extraPairs = map[string]string{}
	}
	s.extraPairs[Key(k, modelid.IntID(intID))] = strID
	s.extraPairs[Key(k, modelid.StringID(strID))] = strconv.FormatInt(intID, 10)
}

// v1Types names V1's int model types.
var v1Types = []string{"LLM", "text-to-image", "industry-search", "text-representation", "vector", "image-understanding"}

func v1Type(t int) string {
	if t >= 0 && t < len(v1Types) {
		return v1Types[t]
	}
	return strconv.Itoa(t)
}
