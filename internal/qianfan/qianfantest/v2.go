package qianfantest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// v2ModelTypes are V2's names for V1's modelType numbers.
var v2ModelTypes = []string{"大语言模型", "文生图大模型", "行业检索模型", "文本表示模型", "向量模型", "图像理解模型"}

func v2ModelType(t int) string {
	if t >= 0 && t < len(v2ModelTypes) {
		return v2ModelTypes[t]
	}
	return "Text2Text"
}

var v2BadRequest = Answer{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: "invalid parameter"}

// v2ID reads the ID in field key: a string, or an int when
// V2AcceptsIntIDs.
func (s *Server) v2ID(body []byte, key string) (any, *Answer) {
	id, ok := idField(body, key)
	if !ok {
		return nil, &v2BadRequest
	}
	if _, isInt := id.(int64); isInt && !s.asm.V2AcceptsIntIDs {
		return nil, &s.asm.V2IntIDAnswer
	}
	return id, nil
}

// v2Delete serves DeleteModelSet and DeleteModel: one ID per call.
func (s *Server) v2Delete(kind, key string, body []byte) (any, *Answer) {
	id, a := s.v2ID(body, key)
	if a != nil {
		return nil, a
	}
	if s.inv == nil {
		if !s.openWorldDeleteLocked(kind, []any{id}) {
			return nil, &s.asm.V2DeleteNotFound
		}
		return struct{}{}, nil
	}
	del, a := s.resolveDeleteLocked(kind, id, true)
	if a != nil {
		return nil, a
	}
	del.run()
	return struct{}{}, nil
}

// v2Page is one marker page over items sorted by ID: the page starts at the
// first item whose ID is >= marker, so deleting items between calls
// neither skips nor repeats any. Faults.FailPages may fail it (action names
// the listing).
func v2Page[T any](s *Server, action string, body []byte, items []T, id func(T) string) (page []T, info map[string]any, a *Answer) {
	var req struct {
		Marker  string `json:"marker"`
		MaxKeys int    `json:"maxKeys"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil, nil, &Answer{Status: http.StatusBadRequest, Code: "MalformedJSON", Message: "The JSON you provided was not well-formed."}
	}
	maxKeys := req.MaxKeys
	if maxKeys <= 0 {
		maxKeys = 10
	}
	maxKeys = min(maxKeys, s.asm.V2MaxKeys)
	start, _ := slices.BinarySearchFunc(items, req.Marker, func(it T, m string) int { return strings.Compare(id(it), m) })
	if n := s.faults.FailPages[action]; n > 1 && start >= (n-1)*maxKeys {
		s.stats.FailedPages++
		return nil, nil, &Answer{Status: http.StatusInternalServerError, Code: "InternalError", Message: "We encountered an internal error. Please try again."}
	}
	end := min(start+maxKeys, len(items))
	info = map[string]any{"marker": req.Marker, "maxKeys": maxKeys, "isTruncated": end < len(items), "nextMarker": ""}
	if end < len(items) {
		info["nextMarker"] = id(items[end])
	}
	return items[start:end], info, nil
}

func (s *Server) v2ModelSetItem(sm *smodel) map[string]any {
	ids, names := []string{}, []string{}
	for _, sv := range sm.versions {
		ids = append(ids, sv.v.IDStr)
		names = append(names, "V"+strconv.Itoa(sv.v.Version))
	}
	return map[string]any{
		"modelSetId": sm.m.IDStr, "modelSetName": sm.m.Name, "modelType": v2ModelType(sm.m.Type), "labels": nil,
		"createTime": v1Time(sm.m.CreateTime), "modifyTime": v1Time(sm.m.CreateTime),
		"modelCount": len(sm.versions), "modelIds": ids, "modelNames": names,
	}
}

func (s *Server) v2ModelSets(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(true)
	}
	page, info, a := v2Page(s, "DescribeCustomModelSets", body, s.inv.v2Order(), func(sm *smodel) string { return sm.m.IDStr })
	if a != nil {
		return nil, a
	}
	list := []map[string]any{}
	for _, sm := range page {
		list = append(list, s.v2ModelSetItem(sm))
	}
	return map[string]any{"customModelSetList": list, "pageInfo": info}, nil
}

func (s *Server) v2ModelSet(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(true)
	}
	var req struct {
		ModelSetID   json.RawMessage `json:"modelSetId"`
		ModelSetName string          `json:"modelSetName"`
	}
	if json.Unmarshal(body, &req) != nil || (len(req.ModelSetID) > 0) == (req.ModelSetName != "") {
		return nil, &v2BadRequest
	}
	var sm *smodel
	if req.ModelSetName != "" {
		for _, m := range s.inv.liveModels() {
			if m.m.Name == req.ModelSetName {
				sm = m
			}
		}
	} else {
		id, a := s.v2ID(body, "modelSetId")
		if a != nil {
			return nil, a
		}
		sm = s.inv.model(id)
	}
	if sm == nil {
		return nil, &s.asm.V2DescribeNotFound
	}
	item := s.v2ModelSetItem(sm)
	return map[string]any{
		"modelSetId": item["modelSetId"], "modelSetName": item["modelSetName"], "source": "UserCreate",
		"modelType": item["modelType"], "description": "", "createTime": item["createTime"],
		"modifyTime": item["modifyTime"], "modelIds": item["modelIds"],
	}, nil
}

func (s *Server) v2Model(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(true)
	}
	id, a := s.v2ID(body, "modelId")
	if a != nil {
		return nil, a
	}
	sv := s.inv.version(id)
	if sv == nil {
		return nil, &s.asm.V2DescribeNotFound
	}
	return map[string]any{
		"modelSetId": sv.model.m.IDStr, "modelSetName": sv.model.m.Name, "modelId": sv.v.IDStr,
		"modelName": "V" + strconv.Itoa(sv.v.Version), "description": "",
		"sourceInfo": map[string]any{"sourceType": "Train", "trainTaskId": fmt.Sprintf("task-%d", sv.v.ID)},
		"status":     sv.v.State, "createTime": v1Time(sv.v.CreateTime), "modifyTime": v1Time(sv.v.CreateTime),
		"isSupportDeploy": true,
	}, nil
}

func (s *Server) v2ServiceItem(svc *Service) map[string]any {
	modelID := svc.Version
	if s.asm.V2ServiceModelIDIsSet {
		modelID = svc.Model
	}
	return map[string]any{
		"serviceId": svc.IDStr, "name": svc.Name, "modelSetId": svc.Model, "modelId": modelID,
		"runStatus": svc.Status, "updateStatus": "", "serviceType": "chat",
		"url": "https://qianfan.baidubce.com/v2/chat/completions?model=" + svc.IDStr,
	}
}

// v2Services lists the services of the protocolVersion asked (absent: 1,
// as Baidu documents) unless ServicesIgnoreProtocolVersion, in the
// runStatus asked (absent: all).
func (s *Server) v2Services(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(true)
	}
	var req struct {
		ProtocolVersion *int     `json:"protocolVersion"`
		RunStatus       []string `json:"runStatus"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil, &v2BadRequest
	}
	pv := 1
	if req.ProtocolVersion != nil {
		pv = *req.ProtocolVersion
	}
	if pv != 1 && pv != 2 {
		return nil, &v2BadRequest
	}
	svcs := slices.DeleteFunc(s.inv.servicesByID(), func(svc *Service) bool {
		return (!s.asm.ServicesIgnoreProtocolVersion && svc.protocol() != pv) ||
			(len(req.RunStatus) > 0 && !slices.Contains(req.RunStatus, svc.Status))
	})
	page, info, a := v2Page(s, "DescribeServices", body, svcs, func(svc *Service) string { return svc.IDStr })
	if a != nil {
		return nil, a
	}
	list := []map[string]any{}
	for _, svc := range page {
		list = append(list, s.v2ServiceItem(svc))
	}
	if s.asm.ServicesFlatPaging {
		info[s.asm.ServicesListField] = list
		return info, nil
	}
	return map[string]any{s.asm.ServicesListField: list, "pageInfo": info}, nil
}

// v2BatchTasks serves DescribeBatchInferenceTasks: taskList and pageInfo,
// filtered by runStatus (absent: all).
func (s *Server) v2BatchTasks(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(true)
	}
	var req struct {
		RunStatus []string `json:"runStatus"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil, &v2BadRequest
	}
	tasks := slices.DeleteFunc(s.inv.tasksByID(), func(t *BatchTask) bool {
		return len(req.RunStatus) > 0 && !slices.Contains(req.RunStatus, t.Status)
	})
	page, info, a := v2Page(s, "DescribeBatchInferenceTasks", body, tasks, func(t *BatchTask) string { return t.ID })
	if a != nil {
		return nil, a
	}
	list := []map[string]any{}
	for _, t := range page {
		item := map[string]any{
			"taskId": t.ID, "name": t.Name, "description": "", "modelId": t.Version, "runStatus": t.Status,
			"endpoint": "", "inferenceParams": map[string]any{}, "createTime": v1Time(t.CreateTime),
			"inputBosUri": "bos:/fake/input/" + t.ID, "outputBosUri": "bos:/fake/output/" + t.ID,
		}
		if t.Status == "Failed" {
			item["errorCode"], item["errorReason"] = 500, "fake failure"
		}
		list = append(list, item)
	}
	return map[string]any{"taskList": list, "pageInfo": info}, nil
}

func (s *Server) v2Service(body []byte) (any, *Answer) {
	if s.inv == nil {
		return nil, noInventory(true)
	}
	id, a := s.v2ID(body, "serviceId")
	if a != nil {
		return nil, a
	}
	svc := s.inv.service(id)
	if svc == nil {
		return nil, &s.asm.V2DescribeNotFound
	}
	return s.v2ServiceItem(svc), nil
}
