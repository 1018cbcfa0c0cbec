package inventory

import (
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
	// SourceServices also lists the custom services (V2).
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
	if src&SourceV2 != 0 {
		sets, err := c.WalkCustomModelSets(ctx, 100)
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		for _, m := range sets {
			byID[m.ModelSetID] = len(s.Models)
			s.Models = append(s.Models, Model{ID: m.ModelSetID, Name: m.ModelSetName, Type: m.ModelType, Created: m.CreateTime, Versions: m.ModelIDs})
		}
		s.Decides = append(s.Decides, Form{modelid.KindModel, modelid.IDString}, Form{modelid.KindVersion, modelid.IDString})
	}
	if src&SourceV1 != 0 {
		l, err := c.WalkModelsV1(ctx, qianfan.ModelListRequest{PageSize: 100})
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		for _, m := range l.Models {
			if i, ok := byID[m.ModelIDStr]; ok {
				s.Models[i].IntID = m.ModelID
				continue
			}
			if src&SourceV2 != 0 {
				// Created after the V2 walk passed its place: not in the
				// V2 listing, so it must not look present by its string ID
				// there; its int ID is still worth knowing.
				continue
			}
			byID[m.ModelIDStr] = len(s.Models)
			s.Models = append(s.Models, Model{ID: m.ModelIDStr, IntID: m.ModelID, Name: m.ModelName, Type: v1Type(m.ModelType), Created: m.CreateTime})
		}
		if l.Consistent() {
			s.Decides = append(s.Decides, Form{modelid.KindModel, modelid.IDInt})
			if src&SourceV2 == 0 {
				s.Decides = append(s.Decides, Form{modelid.KindModel, modelid.IDString})
			}
		}
		if src&SourceV2 != 0 {
			// Pairs of models the V2 walk missed still count.
			s.extraPairs = map[string]string{}
			for _, m := range l.Models {
				if _, ok := byID[m.ModelIDStr]; !ok && m.ModelID != 0 {
					s.extraPairs[Key(modelid.KindModel, modelid.IntID(m.ModelID))] = m.ModelIDStr
					s.extraPairs[Key(modelid.KindModel, modelid.StringID(m.ModelIDStr))] = strconv.FormatInt(m.ModelID, 10)
				}
			}
		}
	}
	if src&SourceV1Versions != 0 {
		s.versionPairs = map[string]string{}
		for _, m := range s.Models {
			d, _, err := c.ModelDetail(ctx, modelid.StringID(m.ID))
			if err != nil {
				return nil, fmt.Errorf("inventory: versions of %s: %w", m.ID, err)
			}
			for _, v := range d.Versions {
				if v.ModelVersionID != 0 && v.ModelVersionIDStr != "" {
					s.versionPairs[Key(modelid.KindVersion, modelid.IntID(v.ModelVersionID))] = v.ModelVersionIDStr
					s.versionPairs[Key(modelid.KindVersion, modelid.StringID(v.ModelVersionIDStr))] = strconv.FormatInt(v.ModelVersionID, 10)
				}
			}
		}
	}
	if src&SourceServices != 0 {
		svcs, err := c.WalkServices(ctx, 100)
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		for _, v := range svcs {
			models, versions := v.Refs()
			s.Services = append(s.Services, Service{ID: v.ServiceID, Name: v.Name, Status: v.RunStatus, Models: models, Versions: versions})
		}
	}
	s.index()
	return s, nil
}

// v1Types names V1's int model types.
var v1Types = []string{"LLM", "text-to-image", "industry-search", "text-representation", "vector", "image-understanding"}

func v1Type(t int) string {
	if t >= 0 && t < len(v1Types) {
		return v1Types[t]
	}
	return strconv.Itoa(t)
}
