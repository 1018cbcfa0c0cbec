package qianfantest

import (
	"cmp"
	"slices"
	"strings"
)

// store is the live inventory, indexed by both ID forms. Every method
// expects Server.mu to be held.
type store struct {
	models   []*smodel
	modelInt map[int64]*smodel
	modelStr map[string]*smodel
	verInt   map[int64]*sversion
	verStr   map[string]*sversion
	services []*Service
	tasks    []*BatchTask
	// byStr is models sorted by string ID, kept until models change: a
	// large account is listed in thousands of pages.
	byStr []*smodel
	// byTime is the listed models newest first (V1's unfiltered order),
	// kept like byStr.
	byTime []*smodel
	// intOf remembers the int ID of every string ID ever held, so that a
	// service keeps naming a model that was deleted under it.
	intOf map[string]int64
	// gone counts deleted models still in models, byStr and byTime:
	// removing each at once cost a pass over the account per deleted ID
	// (a 100-ID call took 70 ms at 200,000 models); readers compact first.
	gone int
}

type smodel struct {
	m        Model // m.Versions is unused: versions holds them
	versions []*sversion
	gone     bool
}

type sversion struct {
	v     Version
	model *smodel
}

func newStore(inv *Inventory) *store {
	st := &store{modelInt: map[int64]*smodel{}, modelStr: map[string]*smodel{},
		verInt: map[int64]*sversion{}, verStr: map[string]*sversion{}, intOf: map[string]int64{}}
	for _, m := range inv.Models {
		sm := &smodel{m: m}
		sm.m.Versions = nil
		for _, v := range m.Versions {
			sv := &sversion{v: v, model: sm}
			sm.versions = append(sm.versions, sv)
			st.verInt[v.ID], st.verStr[v.IDStr] = sv, sv
			st.intOf[v.IDStr] = v.ID
		}
		st.models = append(st.models, sm)
		st.byStr, st.byTime = nil, nil
		st.modelInt[m.ID], st.modelStr[m.IDStr] = sm, sm
		st.intOf[m.IDStr] = m.ID
	}
	for _, s := range inv.Services {
		st.services = append(st.services, &s)
	}
	for _, t := range inv.BatchTasks {
		st.tasks = append(st.tasks, &t)
	}
	return st
}

func (st *store) snapshot() *Inventory {
	st.compact()
	inv := &Inventory{Models: make([]Model, 0, len(st.models)), Services: make([]Service, 0, len(st.services))}
	for _, sm := range st.models {
		m := sm.m
		m.Versions = make([]Version, 0, len(sm.versions))
		for _, sv := range sm.versions {
			m.Versions = append(m.Versions, sv.v)
		}
		inv.Models = append(inv.Models, m)
	}
	for _, s := range st.services {
		inv.Services = append(inv.Services, *s)
	}
	for _, t := range st.tasks {
		inv.BatchTasks = append(inv.BatchTasks, *t)
	}
	return inv
}

// model finds a model by int64 or string ID.
func (st *store) model(id any) *smodel {
	switch v := id.(type) {
	case int64:
		return st.modelInt[v]
	case string:
		return st.modelStr[v]
	}
	return nil
}

// version finds a version by int64 or string ID.
func (st *store) version(id any) *sversion {
	switch v := id.(type) {
	case int64:
		return st.verInt[v]
	case string:
		return st.verStr[v]
	}
	return nil
}

func (st *store) service(id any) *Service {
	for _, s := range st.services {
		switch v := id.(type) {
		case int64:
			if s.ID == v {
				return s
			}
		case string:
			if s.IDStr == v {
				return s
			}
		}
	}
	return nil
}

// modelInUse reports whether a service runs the model or one of its
// versions, or an unfinished batch task runs one of its versions.
func (st *store) modelInUse(sm *smodel) bool {
	for _, s := range st.services {
		if s.Model == sm.m.IDStr {
			return true
		}
	}
	return slices.ContainsFunc(sm.versions, st.versionInUse)
}

func (st *store) versionInUse(sv *sversion) bool {
	for _, s := range st.services {
		if s.Version == sv.v.IDStr {
			return true
		}
	}
	for _, t := range st.tasks {
		if t.Version == sv.v.IDStr && taskActive(t.Status) {
			return true
		}
	}
	return false
}

// deleteModel removes the model and its versions, which it returns.
func (st *store) deleteModel(sm *smodel) []*sversion {
	if sm.gone {
		return nil
	}
	sm.gone = true
	st.gone++
	delete(st.modelInt, sm.m.ID)
	delete(st.modelStr, sm.m.IDStr)
	gone := sm.versions
	for _, sv := range gone {
		delete(st.verInt, sv.v.ID)
		delete(st.verStr, sv.v.IDStr)
	}
	sm.versions = nil
	return gone
}

// compact drops deleted models from models and from the sorted orders,
// which stay sorted: one pass for all deletions since the last read.
func (st *store) compact() {
	if st.gone == 0 {
		return
	}
	isGone := func(sm *smodel) bool { return sm.gone }
	st.models = slices.DeleteFunc(st.models, isGone)
	if st.byStr != nil {
		st.byStr = slices.DeleteFunc(st.byStr, isGone)
	}
	if st.byTime != nil {
		st.byTime = slices.DeleteFunc(st.byTime, isGone)
	}
	st.gone = 0
}

// liveModels is every model held, deleted ones dropped.
func (st *store) liveModels() []*smodel {
	st.compact()
	return st.models
}

func (st *store) deleteVersion(sv *sversion) {
	sm := sv.model
	sm.versions = slices.DeleteFunc(sm.versions, func(x *sversion) bool { return x == sv })
	delete(st.verInt, sv.v.ID)
	delete(st.verStr, sv.v.IDStr)
}

// latest is the model's newest version, nil when it has none.
func (sm *smodel) latest() *sversion {
	if len(sm.versions) == 0 {
		return nil
	}
	return slices.MaxFunc(sm.versions, func(a, b *sversion) int {
		return cmp.Or(a.v.CreateTime.Compare(b.v.CreateTime), cmp.Compare(a.v.ID, b.v.ID))
	})
}

// v1Order lists models the way user/list does by default: newest first.
// Offset pages over this order shift when a model is deleted mid-walk, as
// in any offset query.
func (st *store) v1Order(nameFilter string, prefix bool, types []int, asc bool) []*smodel {
	st.compact()
	plain := nameFilter == "" && len(types) == 0 && !asc
	if plain && st.byTime != nil {
		return st.byTime
	}
	var out []*smodel
	for _, sm := range st.models {
		if sm.m.Unlisted {
			continue
		}
		if nameFilter != "" && !(strings.Contains(sm.m.Name, nameFilter) && (!prefix || strings.HasPrefix(sm.m.Name, nameFilter))) {
			continue
		}
		if len(types) > 0 && !slices.Contains(types, sm.m.Type) {
			continue
		}
		out = append(out, sm)
	}
	slices.SortFunc(out, func(a, b *smodel) int {
		c := cmp.Or(b.m.CreateTime.Compare(a.m.CreateTime), cmp.Compare(b.m.ID, a.m.ID))
		if asc {
			return -c
		}
		return c
	})
	if plain {
		st.byTime = out
	}
	return out
}

// v2Order lists models by string ID: a marker is an ID, so pages stay
// stable when models are deleted between them. The slice is shared: read it
// only.
func (st *store) v2Order() []*smodel {
	st.compact()
	if st.byStr == nil {
		st.byStr = slices.DeleteFunc(slices.Clone(st.models), func(sm *smodel) bool { return sm.m.Unlisted })
		slices.SortFunc(st.byStr, func(a, b *smodel) int { return strings.Compare(a.m.IDStr, b.m.IDStr) })
	}
	return st.byStr
}

func (st *store) tasksByID() []*BatchTask {
	out := slices.Clone(st.tasks)
	slices.SortFunc(out, func(a, b *BatchTask) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (st *store) servicesByID() []*Service {
	out := slices.Clone(st.services)
	slices.SortFunc(out, func(a, b *Service) int { return strings.Compare(a.IDStr, b.IDStr) })
	return out
}
