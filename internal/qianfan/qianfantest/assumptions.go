package qianfantest

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Answer is an error answer the fake gives where Baidu documents none. A
// non-zero ErrorCode answers in V1's form ({error_code, error_msg, log_id});
// else a non-empty Code answers in V2's form ({requestId, code, message},
// with the X-Bce-Error-Code and X-Bce-Error-Message headers); else Body is
// sent as is (empty, HTML...).
type Answer struct {
	Status    int    `json:"status"`               // HTTP status; 0 means 200
	ErrorCode int    `json:"error_code,omitempty"` // V1 numeric code
	Code      string `json:"code,omitempty"`       // V2 / BCE string code
	Message   string `json:"message,omitempty"`
	Body      string `json:"body,omitempty"` // raw body when there is no code
	// GatewayCode, with no other code, is sent only as the X-Bce-Error-Code
	// header over Body: how a gateway answers for a route it no longer has.
	GatewayCode string `json:"gateway_code,omitempty"`
}

// outcome is the Stats.Calls key the answer counts under.
func (a Answer) outcome() string {
	switch {
	case a.ErrorCode != 0:
		return strconv.Itoa(a.ErrorCode)
	case a.Code != "":
		return a.Code
	}
	return strconv.Itoa(a.status())
}

func (a Answer) status() int {
	if a.Status == 0 {
		return http.StatusOK
	}
	return a.Status
}

// Assumptions are every behaviour the fake shows where Baidu documents none
// (docs/qianfan-api.md, "What Baidu does not document"). Each is a named
// switch, so a test can prove a client safe under each reading. The zero
// value of a field means its default (DefaultAssumptions).
type Assumptions struct {
	// V1BatchDeleteNotFound answers a V1 batchDelete naming an ID that does
	// not exist or is already deleted. Defaults to 500001 "param invalid",
	// what the facts call most likely.
	V1BatchDeleteNotFound Answer `json:"v1_batch_delete_not_found"`
	// V1PartialBatch: a rejected V1 batch first deletes the IDs before the
	// first bad one. Defaults to false: a rejected batch deletes nothing.
	V1PartialBatch bool `json:"v1_partial_batch"`
	// V1DetailNotFound answers modelDetail / modelVersionDetail for an
	// unknown ID. Defaults to 500001 "param invalid".
	V1DetailNotFound Answer `json:"v1_detail_not_found"`
	// V1MaxPageSize is the largest pageSize user/list honours. Defaults to 100.
	V1MaxPageSize int `json:"v1_max_page_size"`
	// V1RejectLargePage: a larger pageSize answers 336003 instead of being
	// cut to V1MaxPageSize without a word. Defaults to false (cut).
	V1RejectLargePage bool `json:"v1_reject_large_page"`
	// V1ServiceIDsAsStrings: service/list sends serviceId, aiModelId and
	// aiModelVersionId as strings (as the Go and Java SDK types say) rather
	// than numbers (as the detail page says). Defaults to false (numbers).
	V1ServiceIDsAsStrings bool `json:"v1_service_ids_as_strings"`
	// V1NameFilterPrefix: user/list's nameFilter lists the models whose name
	// starts with it. Defaults to false: whose name contains it. Either way
	// a model named exactly the filter is listed, which is all a client may
	// rely on.
	V1NameFilterPrefix bool `json:"v1_name_filter_prefix"`

	// V2DescribeNotFound answers DescribeModelSet, DescribeModel and
	// DescribeService for an unknown ID. Defaults to HTTP 404 NoSuchKey,
	// BCE's common "resource does not exist".
	V2DescribeNotFound Answer `json:"v2_describe_not_found"`
	// V2DeleteNotFound answers DeleteModelSet and DeleteModel for an unknown
	// or already deleted ID. Defaults to HTTP 404 NoSuchKey.
	V2DeleteNotFound Answer `json:"v2_delete_not_found"`
	// V2AcceptsIntIDs: V2 calls take int IDs too. Defaults to false.
	V2AcceptsIntIDs bool `json:"v2_accepts_int_ids"`
	// V2IntIDAnswer answers an int ID when V2AcceptsIntIDs is false.
	// Defaults to HTTP 400 InappropriateJSON (a value of the wrong type).
	V2IntIDAnswer Answer `json:"v2_int_id_answer"`
	// V2MaxKeys is the largest page of a V2 list; larger counts as this.
	// Defaults to 100 (documented).
	V2MaxKeys int `json:"v2_max_keys"`
	// V2Throttled answers a V2 call over the QPS cap. Defaults to HTTP 429
	// RequestLimitExceeded.
	V2Throttled Answer `json:"v2_throttled"`
	// ServicesListField is the list's name inside DescribeServices' result.
	// Defaults to "serviceList".
	ServicesListField string `json:"services_list_field"`
	// ServicesFlatPaging: DescribeServices puts marker, maxKeys, isTruncated
	// and nextMarker beside the list (the classic BCE list shape) instead of
	// in pageInfo. Defaults to false (pageInfo, like DescribeCustomModelSets).
	ServicesFlatPaging bool `json:"services_flat_paging"`
	// ServicesIgnoreProtocolVersion: DescribeServices lists the services of
	// both protocol versions whatever protocolVersion says. Defaults to
	// false: only those of the protocolVersion asked (absent: 1, as
	// documented). Either way a client must list both values.
	ServicesIgnoreProtocolVersion bool `json:"services_ignore_protocol_version"`
	// V2ServiceModelIDIsSet: a V2 service's modelId holds the model's am-
	// ID (the older meaning) instead of the version's amv- ID. Defaults to
	// false.
	V2ServiceModelIDIsSet bool `json:"v2_service_model_id_is_set"`

	// RefuseInUse: deleting a model or version that a custom service (in
	// any status) runs is refused with InUseV1 / InUseV2. Defaults to false:
	// the delete succeeds and the service breaks silently, which is what a
	// tool must guard against (Stats.InUseDeletes counts it).
	RefuseInUse bool `json:"refuse_in_use"`
	// InUseV1 answers a refused V1 delete. Defaults to 500001.
	InUseV1 Answer `json:"in_use_v1"`
	// InUseV2 answers a refused V2 delete. Defaults to HTTP 400
	// InvalidParameter.
	InUseV2 Answer `json:"in_use_v2"`

	// QPSPerAccessKey: Config.QPS caps each access key's calls in a window
	// of its own, as Baidu's Python SDK keys its optional rate limiter (per
	// credential and URL). Baidu documents no console-API rate limit, so
	// this is a guess either way. Defaults to false: one window counts
	// every call of the account, whichever key signs it (a read-only pair
	// then buys no budget of its own).
	QPSPerAccessKey bool `json:"qps_per_access_key"`

	// V1Gone answers every V1 call once V1 is off. Defaults to HTTP 200
	// error_code 3 "Unsupported openapi method", what Baidu's AI gateway
	// answers for a path it does not serve.
	V1Gone Answer `json:"v1_gone"`
	// V2Gone answers every V2 call once V2 is off. Defaults to HTTP 404 with
	// an empty body.
	V2Gone Answer `json:"v2_gone"`
}

// DefaultAssumptions returns the defaults, each the most likely reading.
func DefaultAssumptions() Assumptions { return Assumptions{}.withDefaults() }

func (a Assumptions) withDefaults() Assumptions {
	or := func(v *Answer, d Answer) {
		if *v == (Answer{}) {
			*v = d
		}
	}
	paramInvalid := Answer{ErrorCode: 500001, Message: "param invalid"}
	noSuchKey := Answer{Status: http.StatusNotFound, Code: "NoSuchKey", Message: "The resource you requested does not exist"}
	or(&a.V1BatchDeleteNotFound, paramInvalid)
	or(&a.V1DetailNotFound, paramInvalid)
	or(&a.V2DescribeNotFound, noSuchKey)
	or(&a.V2DeleteNotFound, noSuchKey)
	or(&a.V2IntIDAnswer, Answer{Status: http.StatusBadRequest, Code: "InappropriateJSON",
		Message: "The JSON you provided was well-formed and valid, but not appropriate for this operation."})
	or(&a.V2Throttled, Answer{Status: http.StatusTooManyRequests, Code: "RequestLimitExceeded", Message: "request limit exceeded"})
	or(&a.InUseV1, paramInvalid)
	or(&a.InUseV2, Answer{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: "model is used by a service"})
	or(&a.V1Gone, Answer{ErrorCode: 3, Message: "Unsupported openapi method"})
	or(&a.V2Gone, Answer{Status: http.StatusNotFound})
	if a.V1MaxPageSize <= 0 {
		a.V1MaxPageSize = 100
	}
	if a.V2MaxKeys <= 0 {
		a.V2MaxKeys = 100
	}
	if a.ServicesListField == "" {
		a.ServicesListField = "serviceList"
	}
	return a
}

// GoneForms are the forms an endpoint that stopped serving may take, by a
// name usable as a flag value, for tests that prove a client never reads
// them as success or as bad IDs.
func GoneForms() map[string]Answer {
	return map[string]Answer{
		"v1-code-3":      {ErrorCode: 3, Message: "Unsupported openapi method"},
		"v1-code-336005": {ErrorCode: 336005, Message: "api name not exist"},
		"v1-code-336101": {ErrorCode: 336101, Message: "invalid HTTP method"},
		"404-empty":      {Status: http.StatusNotFound},
		"404-html":       {Status: http.StatusNotFound, Body: "<html><body><h1>404 Not Found</h1></body></html>"},
		"404-notfound":   {Status: http.StatusNotFound, Code: "NotFound", Message: "not found"},
		"404-nosuchkey":  {Status: http.StatusNotFound, Code: "NoSuchKey", Message: "The resource you requested does not exist"},
		"400-invaliduri": {Status: http.StatusBadRequest, Code: "InvalidURI", Message: "Could not parse the specified URI."},
		"410":            {Status: http.StatusGone},
		"405":            {Status: http.StatusMethodNotAllowed},
		"501":            {Status: http.StatusNotImplemented},
		"404-v1-code-3":  {Status: http.StatusNotFound, ErrorCode: 3, Message: "Unsupported openapi method"},
		// A route removed behind BCE's gateway: no body, the gateway's own
		// "not found" in a header.
		"404-route-removed": {Status: http.StatusNotFound, GatewayCode: "NotFound"},
		"200-empty-object":  {Body: "{}"},
	}
}

// write sends a as the answer; logID is the log_id or requestId.
func (a Answer) write(w http.ResponseWriter, logID string) {
	switch {
	case a.ErrorCode != 0:
		id, _ := strconv.ParseInt(logID, 10, 64)
		writeJSON(w, a.status(), map[string]any{"error_code": a.ErrorCode, "error_msg": a.Message, "log_id": id})
	case a.Code != "":
		w.Header().Set("X-Bce-Error-Code", a.Code)
		w.Header().Set("X-Bce-Error-Message", a.Message)
		w.Header().Set("X-Bce-Request-Id", logID)
		writeJSON(w, a.status(), map[string]any{"requestId": logID, "code": a.Code, "message": a.Message})
	default:
		if a.GatewayCode != "" {
			w.Header().Set("X-Bce-Error-Code", a.GatewayCode)
			w.Header().Set("X-Bce-Request-Id", logID)
		}
		if a.Body != "" {
			ct := "text/html"
			if json.Valid([]byte(a.Body)) {
				ct = "application/json"
			}
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(a.status())
		_, _ = w.Write([]byte(a.Body))
	}
}
