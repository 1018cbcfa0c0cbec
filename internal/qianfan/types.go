package qianfan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// The types below are what the read calls return. Each tolerates unknown
// fields, numbers sent as strings and strings sent as numbers, and empty or
// null times, because Baidu's pages and SDKs disagree on such details; a
// value of the wrong kind altogether makes the answer unreadable
// (ClassUnknown), never a silent zero.

// ModelListRequest pages and filters V1 user/list. Zero fields are not sent,
// except PageNo and PageSize, which the call fills in (1 and 100).
type ModelListRequest struct {
	PageNo     int    `json:"pageNo"`
	PageSize   int    `json:"pageSize"`
	NameFilter string `json:"nameFilter,omitempty"`
	ModelType  []int  `json:"modelType,omitempty"`
	OrderBy    string `json:"orderBy,omitempty"` // e.g. "create_time"
	Order      string `json:"order,omitempty"`   // "asc" or "desc"
}

// ModelPage is one page of V1 user/list.
type ModelPage struct {
	Total int            `json:"total"`
	Items []ModelSummary `json:"items"`
}

// ModelSummary is a model as V1 user/list shows it: only its latest version.
type ModelSummary struct {
	ModelID       int64           `json:"modelId"`
	ModelIDStr    string          `json:"modelIdStr"` // am-...
	ModelName     string          `json:"modelName"`
	ModelType     int             `json:"modelType"` // 0 LLM, 1 text-to-image, ...
	CreateTime    time.Time       `json:"createTime"`
	VersionCount  int             `json:"versionCount"`
	LatestVersion *VersionSummary `json:"latestVersionInfo"`
}

// VersionSummary is a model's latest version in V1 user/list.
type VersionSummary struct {
	VersionID    int64  `json:"versionId"`
	VersionIDStr string `json:"versionIdStr"` // amv-...
	Version      string `json:"version"`
	State        string `json:"state"`
	SourceType   string `json:"sourceType"`
}

// ModelDetail is V1 modelDetail: a model with all its versions.
type ModelDetail struct {
	ModelID     int64          `json:"modelId"`
	ModelIDStr  string         `json:"modelIdStr"`
	ModelName   string         `json:"modelName"`
	Source      string         `json:"source"` // UserCreate, PlatformPreset
	ModelType   int            `json:"modelType"`
	Description string         `json:"description"`
	CreateTime  time.Time      `json:"createTime"`
	ModifyTime  time.Time      `json:"modifyTime"`
	Versions    []ModelVersion `json:"modelVersionList"`
}

// ModelVersion is a version as V1 modelDetail lists it and as V1
// modelVersionDetail returns it (which also fills the Model* fields).
type ModelVersion struct {
	ModelID           int64     `json:"modelId"`
	ModelIDStr        string    `json:"modelIdStr"`
	ModelName         string    `json:"modelName"`
	ModelVersionID    int64     `json:"modelVersionId"`
	ModelVersionIDStr string    `json:"modelVersionIdStr"` // amv-...
	Version           string    `json:"version"`
	State             string    `json:"state"` // Ready, Creating, Fail
	SourceType        string    `json:"sourceType"`
	CreateTime        time.Time `json:"createTime"`
	ModifyTime        time.Time `json:"modifyTime"`
}

// ServiceListRequest filters V1 service/list. An empty filter sends none,
// so that no service type is missed.
type ServiceListRequest struct {
	APITypeFilter []string `json:"apiTypefilter,omitempty"` // chat, completions, embeddings, text2image, image2text
}

// ServiceList is V1 service/list: Baidu's preset services and the account's
// own.
type ServiceList struct {
	Common []ServiceEntry `json:"common"`
	Custom []ServiceEntry `json:"custom"`
}

// ServiceEntry is one V1 service. ServiceID is an int in one Baidu page and
// a string in the SDK types: a numeric string is read as an int ID.
type ServiceEntry struct {
	ServiceID    modelid.ID       `json:"serviceId"`
	ServiceUUID  string           `json:"serviceUuid"` // svco-...
	Name         string           `json:"name"`
	URL          string           `json:"url"`
	APIType      string           `json:"apiType"`
	ChargeStatus string           `json:"chargeStatus"`
	Versions     []ServiceVersion `json:"versionList"`
}

// ServiceVersion is what a V1 service runs. The IDs are zero on preset
// services; a numeric string is read as an int ID, so it compares equal to
// the model's int ID.
type ServiceVersion struct {
	AIModelID        modelid.ID `json:"aiModelId"`
	AIModelVersionID modelid.ID `json:"aiModelVersionId"`
	TrainType        string     `json:"trainType"`
	ServiceStatus    string     `json:"serviceStatus"` // Done, New, Deploying, Failed, Stopped
}

// PageInfo is a V2 list's marker paging.
type PageInfo struct {
	Marker      string `json:"marker"`
	MaxKeys     int    `json:"maxKeys"`
	IsTruncated bool   `json:"isTruncated"`
	NextMarker  string `json:"nextMarker"`
}

// ModelSetPage is one page of V2 DescribeCustomModelSets.
type ModelSetPage struct {
	ModelSets []ModelSet `json:"customModelSetList"`
	PageInfo  PageInfo   `json:"pageInfo"`
}

// ModelSet is a model as V2 sees it ("model set"); ModelIDs are its
// versions' amv- IDs.
type ModelSet struct {
	ModelSetID   string    `json:"modelSetId"` // am-...
	ModelSetName string    `json:"modelSetName"`
	ModelType    string    `json:"modelType"` // Chinese text, or e.g. Text2Text
	Source       string    `json:"source"`
	Description  string    `json:"description"`
	CreateTime   time.Time `json:"createTime"`
	ModifyTime   time.Time `json:"modifyTime"`
	ModelCount   int       `json:"modelCount"`
	ModelIDs     []string  `json:"modelIds"`
	ModelNames   []string  `json:"modelNames"`
}

// V2Model is a model version as V2 DescribeModel returns it.
type V2Model struct {
	ModelSetID      string    `json:"modelSetId"`
	ModelSetName    string    `json:"modelSetName"`
	ModelID         string    `json:"modelId"` // amv-...
	ModelName       string    `json:"modelName"`
	Description     string    `json:"description"`
	Status          string    `json:"status"`
	SourceType      string    `json:"-"` // from sourceInfo.sourceType
	CreateTime      time.Time `json:"createTime"`
	ModifyTime      time.Time `json:"modifyTime"`
	IsSupportDeploy bool      `json:"isSupportDeploy"`
}

// ServicesRequest filters and pages V2 DescribeServices. Zero fields are
// not sent, except MaxKeys and ProtocolVersion, which the call fills in
// (100 and 1).
type ServicesRequest struct {
	Marker      string   `json:"marker,omitempty"`
	MaxKeys     int      `json:"maxKeys"`
	PageReverse bool     `json:"pageReverse,omitempty"`
	Name        string   `json:"name,omitempty"`        // fuzzy match on the service's name
	ServiceType []string `json:"serviceType,omitempty"` // chat, completions, text2image, image2text
	RunStatus   []string `json:"runStatus,omitempty"`   // New, Deploying, Serving, Failed, Stopped
	Creator     []string `json:"creator,omitempty"`
	ChargeType  string   `json:"chargeType,omitempty"` // ComputingUnit, Tokens
	PayType     string   `json:"payType,omitempty"`    // Prepay, Postpay
	// ProtocolVersion is 1 (V1 calling interfaces) or 2; Baidu's default is 1.
	ProtocolVersion int `json:"protocolVersion"`
}

// V2Service is a custom service as V2 DescribeService(s) returns it.
// ModelID has held the model's am- ID (older records) and the version's
// amv- ID: use Refs, which goes by prefix.
type V2Service struct {
	ServiceID    string `json:"serviceId"` // svco-...
	Name         string `json:"name"`
	ModelSetID   string `json:"modelSetId"`
	ModelID      string `json:"modelId"`
	RunStatus    string `json:"runStatus"` // New, Deploying, Serving, Failed, Stopped
	UpdateStatus string `json:"updateStatus"`
	URL          string `json:"url"`
	ServiceType  string `json:"serviceType"`
	// ProtocolVersion is the protocolVersion of the listing that returned
	// the service (1 or 2); 0 when read otherwise.
	ProtocolVersion int `json:"-"`
}

// Refs returns the am- (model) and amv- (version) IDs the service names,
// classified by prefix whatever field carried them.
func (s V2Service) Refs() (models, versions []string) {
	for _, id := range []string{s.ModelSetID, s.ModelID} {
		switch {
		case strings.HasPrefix(id, "amv-"):
			versions = append(versions, id)
		case strings.HasPrefix(id, "am-"):
			models = append(models, id)
		}
	}
	return models, versions
}

// Batch inference task states (runStatus). A task Queuing, Running or
// Stopping still reads its model version.
const (
	TaskQueuing  = "Queuing"
	TaskRunning  = "Running"
	TaskStopping = "Stopping"
	TaskDone     = "Done"
	TaskStopped  = "Stopped"
	TaskFailed   = "Failed"
	TaskExpired  = "Expired"
)

// TaskActiveStates are the states in which a batch inference task uses its
// model version.
var TaskActiveStates = []string{TaskQueuing, TaskRunning, TaskStopping}

// BatchTasksRequest filters and pages V2 DescribeBatchInferenceTasks. Zero
// fields are not sent, except MaxKeys, which the call fills in (100).
type BatchTasksRequest struct {
	RunStatus   []string `json:"runStatus,omitempty"`
	Marker      string   `json:"marker,omitempty"`
	MaxKeys     int      `json:"maxKeys"`
	PageReverse bool     `json:"pageReverse,omitempty"`
}

// BatchTaskPage is one page of V2 DescribeBatchInferenceTasks.
type BatchTaskPage struct {
	Tasks    []BatchTask `json:"taskList"`
	PageInfo PageInfo    `json:"pageInfo"`
}

// BatchTask is a batch inference task as V2 lists it. ModelID is the
// model version it runs (amv-); empty when it runs on an endpoint alone.
type BatchTask struct {
	TaskID       string    `json:"taskId"` // infer-...
	Name         string    `json:"name"`
	Description  string    `json:"description"`
	Endpoint     string    `json:"endpoint"`
	ModelID      string    `json:"modelId"`
	RunStatus    string    `json:"runStatus"`
	ErrorCode    int64     `json:"-"` // when Failed
	ErrorReason  string    `json:"errorReason"`
	InputBosURI  string    `json:"inputBosUri"`
	OutputBosURI string    `json:"outputBosUri"`
	CreateTime   time.Time `json:"createTime"`
	FinishTime   time.Time `json:"finishTime"`
}

// Active reports whether the task still uses its model version.
func (t BatchTask) Active() bool { return slices.Contains(TaskActiveStates, t.RunStatus) }

// UnmarshalJSON reads the list and refuses a page without one: an absent
// list must never read as "no tasks".
func (p *BatchTaskPage) UnmarshalJSON(b []byte) error {
	type plain BatchTaskPage
	aux := struct {
		*plain
		Tasks    *[]BatchTask `json:"taskList"`
		PageInfo *PageInfo    `json:"pageInfo"`
	}{plain: (*plain)(p)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	if aux.Tasks == nil || aux.PageInfo == nil {
		return fmt.Errorf("%w: DescribeBatchInferenceTasks result lacks taskList or pageInfo", errShape)
	}
	p.Tasks, p.PageInfo = *aux.Tasks, *aux.PageInfo
	return nil
}

// UnmarshalJSON is lenient as the package's types are.
func (t *BatchTask) UnmarshalJSON(b []byte) error {
	type plain BatchTask
	aux := struct {
		*plain
		ErrorCode  flexInt  `json:"errorCode"`
		CreateTime flexTime `json:"createTime"`
		FinishTime flexTime `json:"finishTime"`
	}{plain: (*plain)(t)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	t.ErrorCode = int64(aux.ErrorCode)
	t.CreateTime, t.FinishTime = time.Time(aux.CreateTime), time.Time(aux.FinishTime)
	return nil
}

// ServicePage is one page of V2 DescribeServices. Its shape is not
// documented: the list is read from the first of servicesListFields
// present, the paging from pageInfo or, failing that, from marker fields
// beside the list. A result with no list or no paging is unreadable.
type ServicePage struct {
	Services []V2Service
	PageInfo PageInfo
}

// servicesListFields are the names DescribeServices' list may have.
var servicesListFields = []string{"serviceList", "services", "customServiceList", "serviceInfoList", "list", "items"}

// errShape marks a result we cannot read; the call turns it into an
// unreadable answer (ClassUnknown).
var errShape = errors.New("unexpected result shape")

// UnmarshalJSON reads the list and paging in any accepted shape.
func (p *ServicePage) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	list, found := json.RawMessage(nil), false
	for _, name := range servicesListFields {
		if raw, ok := fields[name]; ok && string(raw) != "null" {
			list, found = raw, true
			break
		}
	}
	if !found {
		return fmt.Errorf("%w: DescribeServices result has none of %v", errShape, servicesListFields)
	}
	if err := json.Unmarshal(list, &p.Services); err != nil {
		return err
	}
	if raw, ok := fields["pageInfo"]; ok && string(raw) != "null" {
		return json.Unmarshal(raw, &p.PageInfo)
	}
	if _, ok := fields["isTruncated"]; ok {
		return json.Unmarshal(b, &p.PageInfo)
	}
	return fmt.Errorf("%w: DescribeServices result has no paging", errShape)
}

// UnmarshalJSON is lenient as the package's types are (see above).
func (m *ModelSummary) UnmarshalJSON(b []byte) error {
	type plain ModelSummary
	aux := struct {
		*plain
		ModelID      flexInt  `json:"modelId"`
		ModelType    flexInt  `json:"modelType"`
		VersionCount flexInt  `json:"versionCount"`
		CreateTime   flexTime `json:"createTime"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	m.ModelID, m.ModelType, m.VersionCount = int64(aux.ModelID), int(aux.ModelType), int(aux.VersionCount)
	m.CreateTime = time.Time(aux.CreateTime)
	return nil
}

// UnmarshalJSON is lenient as the package's types are.
func (v *VersionSummary) UnmarshalJSON(b []byte) error {
	type plain VersionSummary
	aux := struct {
		*plain
		VersionID flexInt    `json:"versionId"`
		Version   flexString `json:"version"`
	}{plain: (*plain)(v)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	v.VersionID, v.Version = int64(aux.VersionID), string(aux.Version)
	return nil
}

// UnmarshalJSON is lenient as the package's types are.
func (m *ModelDetail) UnmarshalJSON(b []byte) error {
	type plain ModelDetail
	aux := struct {
		*plain
		ModelID    flexInt  `json:"modelId"`
		ModelType  flexInt  `json:"modelType"`
		CreateTime flexTime `json:"createTime"`
		ModifyTime flexTime `json:"modifyTime"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	m.ModelID, m.ModelType = int64(aux.ModelID), int(aux.ModelType)
	m.CreateTime, m.ModifyTime = time.Time(aux.CreateTime), time.Time(aux.ModifyTime)
	return nil
}

// UnmarshalJSON is lenient as the package's types are.
func (v *ModelVersion) UnmarshalJSON(b []byte) error {
	type plain ModelVersion
	aux := struct {
		*plain
		ModelID        flexInt    `json:"modelId"`
		ModelVersionID flexInt    `json:"modelVersionId"`
		Version        flexString `json:"version"`
		CreateTime     flexTime   `json:"createTime"`
		ModifyTime     flexTime   `json:"modifyTime"`
	}{plain: (*plain)(v)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	v.ModelID, v.ModelVersionID, v.Version = int64(aux.ModelID), int64(aux.ModelVersionID), string(aux.Version)
	v.CreateTime, v.ModifyTime = time.Time(aux.CreateTime), time.Time(aux.ModifyTime)
	return nil
}

// UnmarshalJSON is lenient as the package's types are.
func (s *ServiceEntry) UnmarshalJSON(b []byte) error {
	type plain ServiceEntry
	aux := struct {
		*plain
		ServiceID flexID `json:"serviceId"`
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	s.ServiceID = modelid.ID(aux.ServiceID)
	return nil
}

// UnmarshalJSON is lenient as the package's types are.
func (v *ServiceVersion) UnmarshalJSON(b []byte) error {
	type plain ServiceVersion
	aux := struct {
		*plain
		AIModelID        flexID `json:"aiModelId"`
		AIModelVersionID flexID `json:"aiModelVersionId"`
	}{plain: (*plain)(v)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	v.AIModelID, v.AIModelVersionID = modelid.ID(aux.AIModelID), modelid.ID(aux.AIModelVersionID)
	return nil
}

// UnmarshalJSON is lenient as the package's types are.
func (m *ModelSet) UnmarshalJSON(b []byte) error {
	type plain ModelSet
	aux := struct {
		*plain
		ModelType  flexString `json:"modelType"`
		ModelCount flexInt    `json:"modelCount"`
		CreateTime flexTime   `json:"createTime"`
		ModifyTime flexTime   `json:"modifyTime"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	m.ModelType, m.ModelCount = string(aux.ModelType), int(aux.ModelCount)
	m.CreateTime, m.ModifyTime = time.Time(aux.CreateTime), time.Time(aux.ModifyTime)
	return nil
}

// UnmarshalJSON is lenient as the package's types are.
func (m *V2Model) UnmarshalJSON(b []byte) error {
	type plain V2Model
	aux := struct {
		*plain
		SourceInfo struct {
			SourceType string `json:"sourceType"`
		} `json:"sourceInfo"`
		CreateTime flexTime `json:"createTime"`
		ModifyTime flexTime `json:"modifyTime"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	m.SourceType = aux.SourceInfo.SourceType
	m.CreateTime, m.ModifyTime = time.Time(aux.CreateTime), time.Time(aux.ModifyTime)
	return nil
}

// flexInt reads a JSON number or a numeric string; null and "" are 0.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(bytes.TrimSpace(b), `"`))
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not a whole number", errShape, b)
	}
	*f = flexInt(n)
	return nil
}

// flexString reads a JSON string or number; null is "".
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("%w: %s is neither a string nor a number", errShape, b)
		}
		*f = flexString(n.String())
	}
	return nil
}

// flexTime reads RFC 3339 with an offset, as Baidu writes times; null and
// "" are the zero time.
type flexTime time.Time

func (f *flexTime) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: time %s is not a string", errShape, b)
	}
	if s == nil || *s == "" {
		*f = flexTime{}
		return nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return fmt.Errorf("%w: time %q is not RFC 3339", errShape, *s)
	}
	*f = flexTime(t)
	return nil
}

// flexID reads an ID: a number or a numeric string is an int ID, any other
// string a string ID; null, "", 0 and "0" are the zero ID.
type flexID modelid.ID

func (f *flexID) UnmarshalJSON(b []byte) error {
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	if s == "" || s == "0" {
		*f = flexID{}
		return nil
	}
	// Baidu's answers are read as they are; operator input goes through
	// modelid.ParseID instead, whose rule is stricter.
	t := modelid.IDString
	if strings.Trim(string(s), "+-0123456789") == "" {
		t = modelid.IDInt
	}
	id, err := modelid.Stored(string(s), t)
	if err == nil && t == modelid.IDInt {
		err = id.Validate()
	}
	if err != nil {
		return fmt.Errorf("%w: ID %s: %v", errShape, b, err)
	}
	*f = flexID(id)
	return nil
}
