package qianfantest

import (
	"encoding/json"
	"strconv"
	"time"
)

var paramInvalid = Answer{ErrorCode: 500001, Message: "param invalid"}

// v1Delete serves both V1 batchDelete endpoints.
func (s *Server) v1Delete(kind, key string, body []byte) (any, *Answer) {
	ids, ok := parseIDs(body, key)
	if !ok {
		return nil, &paramInvalid
	}
	if s.inv == nil {
		if !s.openWorldDeleteLocked(kind, ids) {
			return nil, &paramInvalid
		}
		return struct{}{}, nil
	}
	s.stats.LargestBatch = max(s.stats.LargestBatch, len(ids))
	if s.cfg.MaxIDs > 0 && len(ids) > s.cfg.MaxIDs {
		return nil, &paramInvalid
	}
	// Resolve every ID first: a rejected batch deletes nothing unless
	// V1PartialBatch, and then only the IDs before the first bad one.
	var targets []func()
	seen := map[any]bool{}
	var failed *Answer
	for _, id := range ids {
		del, a := s.resolveDeleteLocked(kind, id, false)
		if a == nil && seen[del.key] {
			a = &paramInvalid
		}
		if a != nil {
			failed = a
			break
		}
		seen[del.key] = true
		targets = append(targets, del.run)
	}
	if failed != nil && !s.asm.V1PartialBatch {
		return nil, failed
	}
	for _, run := range targets {
		run()
	}
	if failed != nil {
		return nil, failed
	}
	return struct{}{}, nil
}

// deletion is one resolved delete: key identifies the target, run applies it.
type deletion struct {
	key any
	run func()
}

// resolveDeleteLocked finds id of kind in the inventory and checks whether
// it may be deleted; the answer is nil when it may.
func (s *Server) resolveDeleteLocked(kind string, id any, v2 bool) (deletion, *Answer) {
	notFound, inUse := &s.asm.V1BatchDeleteNotFound, &s.asm.InUseV1
	if v2 {
		notFound, inUse = &s.asm.V2DeleteNotFound, &s.asm.InUseV2
	}
	if s.deleted[kind][idKey(id)] > 0 {
		s.stats.RepeatDeletes++
	}
	switch kind {
	case KindModel:
		sm := s.inv.model(id)
		if sm == nil {
			return deletion{}, notFound
		}
		used := s.inv.modelInUse(sm)
		if used && s.asm.RefuseInUse {
			return deletion{}, inUse
		}
		return deletion{key: sm, run: func() {
			if used {
				s.stats.InUseDeletes++
			}
			s.stats.IDsDeleted++
			s.markDeleted(KindModel, sm.m.ID, sm.m.IDStr)
			for _, sv := range s.inv.deleteModel(sm) {
				s.stats.CascadeDeletes++
				s.markDeleted(KindVersion, sv.v.ID, sv.v.IDStr)
			}
		}}, nil
	default:
		sv := s.inv.version(id)
		if sv == nil {
			return deletion{}, notFound
		}
		used := s.inv.versionInUse(sv)
		if used && s.asm.RefuseInUse {
			return deletion{}, inUse
		}
		return deletion{key: sv, run: func() {
			if used {
				s.stats.InUseDeletes++
			}
			s.stats.IDsDeleted++
			s.markDeleted(KindVersion, sv.v.ID, sv.v.IDStr)
			s.inv.deleteVersion(sv)
		}}, nil
	}
}

func (s *Server) markDeleted(kind string, id int64, str string) {
	s.deleted[kind][idKey(id)]++
	s.deleted[kind][idKey(str)]++
}

// v1Time is how V1 and V2 write times: RFC 3339 with Beijing's offset.
func v1Time(t time.Time) string { return t.In(cst).Format(time.RFC3339) }

func (s *Server) v1ModelList(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(false)
	}
	var req struct {
		PageNo     int    `json:"pageNo"`
		PageSize   int    `json:"pageSize"`
		NameFilter string `json:"nameFilter"`
		ModelType  []int  `json:"modelType"`
		Order      string `json:"order"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil, &paramInvalid
	}
	req.PageNo = max(req.PageNo, 1)
	if req.PageSize <= 0 {
		req.PageSize = 20
	}
	if req.PageSize > s.asm.V1MaxPageSize {
		if s.asm.V1RejectLargePage {
			return nil, &Answer{ErrorCode: 336003, Message: "pageSize too large"}
		}
		req.PageSize = s.asm.V1MaxPageSize
	}
	if req.NameFilter != "" {
		s.stats.NameFiltered++
	}
	all := s.inv.v1Order(req.NameFilter, s.asm.V1NameFilterPrefix, req.ModelType, req.Order == "asc")
	items := []map[string]any{}
	for i := (req.PageNo - 1) * req.PageSize; i < len(all) && len(items) < req.PageSize; i++ {
		sm := all[i]
		item := map[string]any{
			"modelName": sm.m.Name, "modelId": sm.m.ID, "modelIdStr": sm.m.IDStr, "modelType": sm.m.Type,
			"tags": nil, "createTime": v1Time(sm.m.CreateTime), "versionCount": len(sm.versions), "trainType": "ernieBot",
			"latestVersionInfo": nil,
		}
		if lv := sm.latest(); lv != nil {
			item["latestVersionInfo"] = map[string]any{"state": lv.v.State, "version": strconv.Itoa(lv.v.Version),
				"sourceType": "Train", "versionId": lv.v.ID, "versionIdStr": lv.v.IDStr}
		}
		items = append(items, item)
	}
	return map[string]any{"total": len(all), "items": items}, nil
}

// idField reads the ID in field key of a JSON body: an int or a string.
func idField(body []byte, key string) (any, bool) {
	var req map[string]json.RawMessage
	if json.Unmarshal(body, &req) != nil {
		return nil, false
	}
	raw, ok := req[key]
	if !ok {
		return nil, false
	}
	return parseID(raw)
}

func (s *Server) v1ModelDetail(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(false)
	}
	id, ok := idField(body, "modelId")
	if !ok {
		return nil, &paramInvalid
	}
	sm := s.inv.model(id)
	if sm == nil {
		return nil, &s.asm.V1DetailNotFound
	}
	versions := []map[string]any{}
	for _, sv := range sm.versions {
		versions = append(versions, map[string]any{
			"modelVersionId": sv.v.ID, "modelVersionIdStr": sv.v.IDStr, "version": strconv.Itoa(sv.v.Version),
			"state": sv.v.State, "sourceType": "Train", "createTime": v1Time(sv.v.CreateTime),
		})
	}
	return map[string]any{
		"modelId": sm.m.ID, "modelIdStr": sm.m.IDStr, "modelName": sm.m.Name, "source": "UserCreate",
		"modelType": sm.m.Type, "createTime": v1Time(sm.m.CreateTime), "modifyTime": v1Time(sm.m.CreateTime),
		"description": "", "trainType": "ernieBot", "modelVersionList": versions,
	}, nil
}

func (s *Server) v1VersionDetail(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(false)
	}
	id, ok := idField(body, "modelVersionId")
	if !ok {
		return nil, &paramInvalid
	}
	sv := s.inv.version(id)
	if sv == nil {
		return nil, &s.asm.V1DetailNotFound
	}
	return map[string]any{
		"modelId": sv.model.m.ID, "modelIdStr": sv.model.m.IDStr, "modelName": sv.model.m.Name,
		"modelVersionId": sv.v.ID, "modelVersionIdStr": sv.v.IDStr, "state": sv.v.State,
		"version": strconv.Itoa(sv.v.Version), "sourceType": "Train",
		"createTime": v1Time(sv.v.CreateTime), "modifyTime": v1Time(sv.v.CreateTime),
	}, nil
}

// v1Status is V1's name for a V2 runStatus.
func v1Status(status string) string {
	if status == "Serving" {
		return "Done"
	}
	return status
}

func (s *Server) v1ServiceList(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(false)
	}
	id := func(n int64) any {
		if s.asm.V1ServiceIDsAsStrings {
			return strconv.FormatInt(n, 10)
		}
		return n
	}
	custom := []map[string]any{}
	for _, svc := range s.inv.servicesByID() {
		version := map[string]any{"trainType": "ernieBot", "serviceStatus": v1Status(svc.Status)}
		// A service whose model was deleted keeps pointing at it: the IDs
		// come from the service record, not from the model store.
		if mid, vid, ok := s.serviceIntIDs(svc); ok {
			version["aiModelId"], version["aiModelVersionId"] = id(mid), id(vid)
		}
		custom = append(custom, map[string]any{
			"serviceId": id(svc.ID), "serviceUuid": svc.IDStr, "name": svc.Name,
			"url":     "https://qianfan.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/" + svc.IDStr,
			"apiType": "chat", "chargeStatus": "NOTOPEN", "versionList": []any{version},
		})
	}
	common := []map[string]any{{
		"name": "ERNIE-Bot 4.0", "url": "https://qianfan.baidubce.com/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/completions_pro",
		"apiType": "chat", "chargeStatus": "OPENED",
		"versionList": []any{map[string]any{"trainType": "ernieBot_4", "serviceStatus": "Done"}},
	}}
	return map[string]any{"common": common, "custom": custom}, nil
}

// serviceIntIDs finds the int IDs of what svc runs, remembered even after
// the model or version was deleted.
func (s *Server) serviceIntIDs(svc *Service) (model, version int64, ok bool) {
	if svc.Model == "" && svc.Version == "" {
		return 0, 0, false
	}
	m, mok := s.inv.intOf[svc.Model]
	v, vok := s.inv.intOf[svc.Version]
	return m, v, mok || vok
}
