package qianfantest

import (
	"net/http"
)

// operation is one API endpoint. run is called with Server.mu held and
// returns the result object of a success or the error answer.
type operation struct {
	name  string // as Stats.Endpoints spells it
	v2    bool
	write bool
	run   func(s *Server, body []byte) (any, *Answer)
}

// The endpoints, as the real paths and actions spell them.
var (
	v1Ops = map[string]operation{
		"/wenxinworkshop/modelrepo/model/batchDelete": {write: true,
			run: func(s *Server, b []byte) (any, *Answer) { return s.v1Delete(KindModel, "modelIDs", b) }},
		"/wenxinworkshop/modelrepo/model/version/batchDelete": {write: true,
			run: func(s *Server, b []byte) (any, *Answer) { return s.v1Delete(KindVersion, "modelVersionIds", b) }},
		"/wenxinworkshop/modelrepo/model/user/list":    {run: (*Server).v1ModelList},
		"/wenxinworkshop/modelrepo/modelDetail":        {run: (*Server).v1ModelDetail},
		"/wenxinworkshop/modelrepo/modelVersionDetail": {run: (*Server).v1VersionDetail},
		"/wenxinworkshop/service/list":                 {run: (*Server).v1ServiceList},
	}
	v2Ops = map[string]map[string]operation{
		"/v2/model": {
			"DescribeCustomModelSets": {run: (*Server).v2ModelSets},
			"DescribeModelSet":        {run: (*Server).v2ModelSet},
			"DescribeModel":           {run: (*Server).v2Model},
			"DeleteModelSet": {write: true,
				run: func(s *Server, b []byte) (any, *Answer) { return s.v2Delete(KindModel, "modelSetId", b) }},
			"DeleteModel": {write: true,
				run: func(s *Server, b []byte) (any, *Answer) { return s.v2Delete(KindVersion, "modelId", b) }},
		},
		"/v2/service": {
			"DescribeServices": {run: (*Server).v2Services},
			"DescribeService":  {run: (*Server).v2Service},
		},
		"/v2/batchinference": {
			"DescribeBatchInferenceTasks": {run: (*Server).v2BatchTasks},
		},
	}
)

// route finds the operation of r: by path for V1, by path and Action for V2.
func route(r *http.Request) (operation, bool) {
	if op, ok := v1Ops[r.URL.Path]; ok {
		op.name = r.URL.Path
		return op, true
	}
	action := r.URL.Query().Get("Action")
	if op, ok := v2Ops[r.URL.Path][action]; ok {
		op.name, op.v2 = r.URL.Path+"?Action="+action, true
		return op, true
	}
	return operation{}, false
}

// noInventory answers a read in open-world mode: an error no client can
// mistake for an empty account.
func noInventory(v2 bool) *Answer {
	if v2 {
		return &Answer{Status: http.StatusBadRequest, Code: "FakeNoInventory", Message: errNoInventory.Error()}
	}
	return &Answer{ErrorCode: 990001, Message: errNoInventory.Error()}
}
