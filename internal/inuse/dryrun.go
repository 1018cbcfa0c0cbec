package inuse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Outcome is what a run would do now with one directly requested ID.
type Outcome string

// The outcomes of a dry run.
const (
	// OutcomeExists: the ID exists and nothing uses it; a run would delete it.
	OutcomeExists Outcome = "exists"
	// OutcomeInUse: a service or an unfinished batch task uses it; a run
	// would not delete it.
	OutcomeInUse Outcome = "in use"
	// OutcomeGone: a complete listing lacks it and the fleet saw it exist
	// before: it is already deleted.
	OutcomeGone Outcome = "already gone"
	// OutcomeNotFound: a complete listing lacks it and nothing ever showed
	// it (a typo, another account's ID).
	OutcomeNotFound Outcome = "not found"
	// OutcomeCannotTell: the listings could not decide it.
	OutcomeCannotTell Outcome = "cannot tell"
)

// Answer is the dry run's answer for one ID.
type Answer struct {
	ID      modelid.ID `json:"id"`
	Outcome Outcome    `json:"outcome"`
	Name    string     `json:"name,omitempty"`  // the model's name; for a version, "model/version"
	Type    string     `json:"type,omitempty"`  // the model's type
	Model   string     `json:"model,omitempty"` // a version's model (am-)
	Created time.Time  `json:"created,omitzero"`
	Users   []string   `json:"users,omitempty"` // what uses it (OutcomeInUse)
	Reason  string     `json:"reason,omitempty"`
}

// DryRun answers, for each of ids of kind k in order, what a run would do
// with it now, deleting nothing: it makes read calls only (a complete V2
// model listing, the in-use view's listings, and for versions that exist at
// most DescribeLimit DescribeModel calls for their names and times). An
// error means Redis failed; Qianfan failing makes the IDs it concerns
// OutcomeCannotTell, with the reason.
func (v *View) DryRun(ctx context.Context, k modelid.Kind, ids []modelid.ID) ([]Answer, error) {
	out := make([]Answer, len(ids))
	for i, id := range ids {
		out[i] = Answer{ID: id, Outcome: OutcomeCannotTell}
	}
	// What the fleet saw before this listing: the last saved snapshot, the
	// ID pairs and the versions' models.
	before, err := v.seenBefore(ctx, k, ids)
	if err != nil {
		return nil, err
	}
	snap, err := inventory.Read(ctx, v.qc, inventory.SourceV2)
	if err != nil {
		return cannotTell(out, "the model listing failed: "+err.Error()), nil
	}
	if err := v.store.LearnParents(ctx, snap.Parents()); err != nil {
		return nil, err
	}
	used, err := v.Check(ctx, k, ids)
	if errors.Is(err, ErrCannotTell) {
		return cannotTell(out, err.Error()), nil
	}
	if err != nil {
		return nil, err
	}
	models, parentOf := map[string]*inventory.Model{}, map[string]*inventory.Model{}
	for i := range snap.Models {
		m := &snap.Models[i]
		models[m.ID] = m
		for _, ver := range m.Versions {
			parentOf[ver] = m
		}
	}
	strs := make([]string, len(ids))
	others, err := v.store.Other(ctx, k, ids)
	if err != nil {
		return nil, err
	}
	details := 0
	for i, id := range ids {
		a := &out[i]
		strs[i] = id.String()
		if id.Type() == modelid.IDInt {
			strs[i] = others[id].String()
		}
		var m *inventory.Model
		if k == modelid.KindModel {
			m = models[strs[i]]
		} else {
			m = parentOf[strs[i]]
		}
		switch {
		case used[i].State == Unknown && m == nil && id.Type() == modelid.IDInt:
			a.Reason = used[i].Reason
		case m == nil && before[i]:
			a.Outcome, a.Reason = OutcomeGone, "absent from a complete listing, and seen before"
		case m == nil:
			a.Outcome, a.Reason = OutcomeNotFound, "absent from a complete listing, and never seen"
		default:
			a.Name, a.Type, a.Created = m.Name, m.Type, m.Created
			if k == modelid.KindVersion {
				a.Model, a.Created = m.ID, time.Time{}
				if details < v.cfg.DescribeLimit {
					details++
					if d, _, err := v.qc.DescribeModel(ctx, strs[i]); err == nil {
						a.Name, a.Created = m.Name+"/"+d.ModelName, d.CreateTime
					}
				}
			}
			switch used[i].State {
			case InUse:
				a.Outcome, a.Users, a.Reason = OutcomeInUse, used[i].Users, used[i].Reason
			case Free:
				a.Outcome, a.Reason = OutcomeExists, "exists, and nothing uses it: a run would delete it"
			default:
				a.Reason = used[i].Reason
			}
		}
	}
	return out, nil
}

// seenBefore reports, for each ID, whether the fleet has seen it exist: in
// the last saved snapshot, in an ID pair, or (a version) placed in a model.
func (v *View) seenBefore(ctx context.Context, k modelid.Kind, ids []modelid.ID) ([]bool, error) {
	out := make([]bool, len(ids))
	pres, _, err := v.store.Check(ctx, k, ids, 0)
	if err != nil && !errors.Is(err, inventory.ErrNoSnapshot) {
		return nil, err
	}
	others, err := v.store.Other(ctx, k, ids)
	if err != nil {
		return nil, err
	}
	var vers []string
	if k == modelid.KindVersion {
		for _, id := range ids {
			vers = append(vers, id.String())
		}
	}
	parents, err := v.store.Parents(ctx, vers)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		out[i] = (pres != nil && pres[i] == inventory.Present) || others[id] != (modelid.ID{}) || parents[id.String()] != ""
	}
	return out, nil
}

func cannotTell(out []Answer, reason string) []Answer {
	for i := range out {
		out[i].Outcome, out[i].Reason = OutcomeCannotTell, fmt.Sprintf("cannot tell: %s", reason)
	}
	return out
}
