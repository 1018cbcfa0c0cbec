// Package fakeqianfan is a faithful in-memory fake of Qianfan's
// model-management API (V1 and V2: listing, describing and deleting models,
// versions and services), for tests (wrap it in httptest.NewServer) and as
// the cmd/fakeqianfan binary.
//
// The fake verifies every bce-auth-v1 signature with its own code (not
// Baidu's signer), enforces a QPS cap and a maximum V1 list length, injects
// faults by seeded rates, and counts outcomes, calls per endpoint, reads and
// deletes for assertions.
//
// # Two modes
//
// Without Config.Inventory the fake is an open world: every ID exists until
// deleted unless Config.Invalid says otherwise, V1 and V2 deletes work, and
// list and describe calls answer an error (nothing to list). With an
// inventory (NewInventory makes one up, ReadInventory loads one) it holds
// models, versions and custom services: listings page like Qianfan's (V1
// by offset, which shifts when something is deleted mid-walk; V2 by marker,
// which does not), a deletion through any endpoint removes the model or
// version (a model with its versions), and an unknown ID answers as
// Assumptions says.
//
// # Assumptions
//
// Every behaviour Baidu does not document is a named switch in Assumptions
// (docs/qianfan-api.md lists them), each defaulting to the most likely
// reading:
//
//	V1BatchDeleteNotFound  500001 param invalid
//	V1PartialBatch         false: a rejected V1 batch deletes nothing
//	V1DetailNotFound       500001 param invalid
//	V1MaxPageSize          100, a larger pageSize is cut silently
//	V1RejectLargePage      false
//	V1ServiceIDsAsStrings  false: service/list IDs are numbers
//	V2DescribeNotFound     HTTP 404 NoSuchKey
//	V2DeleteNotFound       HTTP 404 NoSuchKey
//	V2AcceptsIntIDs        false; V2IntIDAnswer HTTP 400 InappropriateJSON
//	V2MaxKeys              100 (documented)
//	V2Throttled            HTTP 429 RequestLimitExceeded
//	ServicesListField      "serviceList"
//	ServicesFlatPaging     false: DescribeServices pages in pageInfo
//	ServicesIgnoreProtocolVersion  false: DescribeServices lists only the
//	                       protocolVersion asked, 1 when absent (documented)
//	V2ServiceModelIDIsSet  false: a V2 service's modelId is the amv- version
//	RefuseInUse            false: deleting what a service runs succeeds
//	                       (Stats.InUseDeletes counts it); InUseV1 500001,
//	                       InUseV2 HTTP 400 InvalidParameter when true
//	QPSPerAccessKey        false: Config.QPS caps all calls in one window,
//	                       whichever access key signs them
//	V1Gone                 HTTP 200 error_code 3 "Unsupported openapi method"
//	V2Gone                 HTTP 404, empty body
//
// # Control
//
// Tests use Go methods (SetFaults, SetV1Off, Revoke, SetPermission,
// AddService, SetServiceVersion, AddBatchTask, SetBatchTaskStatus, Exists,
// Inventory, DeleteCount, Stats).
// Other processes use the /_fake/ endpoints: GET stats, POST faults (Faults
// as JSON), GET and PUT inventory, GET and PUT assumptions, POST v1-off,
// v1-on, v2-off, v2-on, POST services and batch-tasks (one as JSON, added),
// POST batch-tasks/status (?id=infer-…&status=Done), POST keys/revoke, keys/restore and keys/permission
// (?access_key=AK, &level=full|read|none).
package qianfantest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kinds of ID, as passed to Config.Invalid, Server.DeleteCount and Server.Exists.
const (
	KindModel   = "model"   // V1 modelIDs, V2 modelSetId (am-)
	KindVersion = "version" // V1 modelVersionIds, V2 modelId (amv-)
	KindService = "service" // V1 serviceId, V2 serviceId (svco-)
)

// Default credentials, accepted when Config.Credentials is empty.
const (
	DefaultAccessKey = "test-ak"
	DefaultSecretKey = "test-sk"
)

// Outcomes counted in Stats.Calls besides the numeric error codes
// ("500001", "18", "336100", "500000", "336101").
const (
	OutcomeOK       = "ok"
	Outcome503      = "503"
	OutcomeReset    = "reset"
	OutcomeDrop     = "drop"
	OutcomeAuth     = "401"
	OutcomeNotFound = "404"
	OutcomeDenied   = "403"  // a valid key without the permission
	OutcomeGone     = "gone" // the endpoint was switched off
)

// Config configures a fake Server.
type Config struct {
	// Credentials maps access key to secret key. Defaults to
	// {DefaultAccessKey: DefaultSecretKey}.
	Credentials map[string]string
	// Permissions are keys' starting permissions (SetPermission changes
	// them); a key not named has PermFull. A read-only pair is a key with
	// PermRead: it lists and describes, and every delete it signs answers
	// 403 AccessDenied.
	Permissions map[string]Permission
	// Invalid reports IDs that do not exist in open-world mode (deleting
	// them answers 500001). id is an int64 or a string. Every other ID
	// exists until deleted. InvalidIDs builds one from a list. Ignored with
	// an Inventory. Defaults to nil: every ID exists.
	Invalid func(kind string, id any) bool
	// Inventory is what the account holds; the fake works on a copy.
	// Defaults to nil: open-world mode.
	Inventory *Inventory
	// Assumptions switch what Baidu does not document. Defaults to
	// DefaultAssumptions().
	Assumptions Assumptions
	// V1OffAfter: V1 serves this many calls, then answers Assumptions.V1Gone
	// to every call. Defaults to 0: V1 stays on.
	V1OffAfter int
	// V2OffAfter: the same for V2. Defaults to 0: V2 stays on.
	V2OffAfter int
	// MaxIDs: a longer list answers 500001. Defaults to 0, unlimited.
	MaxIDs int
	// QPS: more than QPS calls in any one-second window answer error_code
	// 18 (V2: Assumptions.V2Throttled); one window for the account, or one
	// per access key (Assumptions.QPSPerAccessKey). Calls rejected with 401
	// or 403 do not count. Defaults to 0, off.
	QPS int
	// MaxSkew is how far the signing timestamp and x-bce-date may be from
	// Now. Defaults to 15 minutes.
	MaxSkew time.Duration
	// Faults are injected at the given rates. Defaults to none.
	Faults Faults
	// Now is the server's clock. Defaults to time.Now.
	Now func() time.Time
}

// InvalidIDs returns a Config.Invalid that rejects the given IDs in both
// kinds. Ints of any Go integer type and strings are accepted.
func InvalidIDs(ids ...any) func(kind string, id any) bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[idKey(normalizeID(id))] = true
	}
	return func(_ string, id any) bool { return set[idKey(normalizeID(id))] }
}

func normalizeID(id any) any {
	switch v := id.(type) {
	case int:
		return int64(v)
	case int32:
		return int64(v)
	case uint:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		return int64(v)
	}
	return id
}

// idKey keeps int 5 and string "5" apart.
func idKey(id any) string {
	switch v := id.(type) {
	case int64:
		return "i:" + strconv.FormatInt(v, 10)
	case string:
		return "s:" + v
	}
	return fmt.Sprintf("?:%v", id)
}

// Faults are injected per call, in this order: latency, 503, 336100,
// 500000, reset (close without answer, nothing deleted), then after a
// successful delete, drop (close without answer). Rates are in [0,1].
// With the same Seed and the same sequence of calls the faults repeat.
type Faults struct {
	Rate503             float64       `json:"rate_503"`
	Rate336100          float64       `json:"rate_336100"`
	Rate500000          float64       `json:"rate_500000"`
	RateReset           float64       `json:"rate_reset"`
	RateDropAfterDelete float64       `json:"rate_drop_after_delete"`
	Latency             time.Duration `json:"latency"`
	Seed                int64         `json:"seed"`
	// FailPages fails V2 listings part-way: for a listing named by its
	// Action (DescribeCustomModelSets, DescribeServices,
	// DescribeBatchInferenceTasks), every request for page N >= 2 or later
	// answers HTTP 500 InternalError, so a walk fails after its first N-1
	// pages.
	FailPages map[string]int `json:"fail_pages,omitempty"`
	// DropDeletes bounds dropped answers exactly: the answer of every
	// DropEvery-th delete call that deletes (default every one) is dropped,
	// DropDeletes times in all, whatever the rates roll.
	DropDeletes int `json:"drop_deletes,omitempty"`
	DropEvery   int `json:"drop_every,omitempty"`
}

// Stats are the fake's counters.
type Stats struct {
	Calls         map[string]int `json:"calls"`          // by outcome: "ok", "500001", "18", "503", "reset", "drop", "401", "NoSuchKey", "gone", ...
	IDsDeleted    int            `json:"ids_deleted"`    // IDs actually deleted by requests (not the versions deleted with their model)
	RepeatDeletes int            `json:"repeat_deletes"` // IDs in requests that were already deleted
	LargestBatch  int            `json:"largest_batch"`  // longest well-formed list received

	// Endpoints counts every call to an API endpoint, whatever its outcome,
	// by the endpoint's name as the client spells it: the V1 path, or
	// "/v2/model?Action=DeleteModel".
	Endpoints map[string]int `json:"endpoints"`
	Reads     int            `json:"reads"`   // calls to list and describe endpoints
	Deletes   int            `json:"deletes"` // calls to delete endpoints (not IDs)
	// CascadeDeletes counts versions deleted with their model.
	CascadeDeletes int `json:"cascade_deletes"`
	// InUseDeletes counts models and versions deleted while a custom service
	// ran them (only possible while Assumptions.RefuseInUse is false).
	InUseDeletes int `json:"in_use_deletes"`
	// FailedPages counts listing pages failed by Faults.FailPages.
	FailedPages int `json:"failed_pages"`
	// NameFiltered counts V1 user/list calls that carried a nameFilter
	// (also counted in Endpoints).
	NameFiltered int `json:"name_filtered"`
	// Keys counts every API call by the access key its Authorization
	// header names ("" when none), whatever its outcome.
	Keys map[string]KeyCalls `json:"keys"`
}

// KeyCalls are one access key's calls.
type KeyCalls struct {
	Reads   int `json:"reads"`   // list and describe calls
	Deletes int `json:"deletes"` // delete calls
	Denied  int `json:"denied"`  // calls answered 403: the key may not make them
}

// Server is the fake; it is an http.Handler and safe for concurrent use.
type Server struct {
	cfg     Config
	control *http.ServeMux // the /_fake/ endpoints

	mu         sync.Mutex
	asm        Assumptions
	inv        *store // nil: open world
	faults     Faults
	rng        *rand.Rand
	deleted    map[string]map[string]int // kind -> idKey -> times deleted
	calls      map[string][]time.Time    // recent accepted calls by window (see Assumptions.QPSPerAccessKey)
	stats      Stats
	logID      int64
	creds      map[string]string
	revoked    map[string]bool
	perms      map[string]Permission
	v1Calls    int
	v2Calls    int
	v1Off      bool
	v2Off      bool
	v1OffAfter int
	v2OffAfter int
	deletesOK  int // delete calls that deleted, for Faults.DropEvery
	dropped    int // answers dropped for Faults.DropDeletes
}

// Permission is what an access key's IAM policy allows.
type Permission string

// The permission levels. Keys start with PermFull.
const (
	PermFull Permission = "full" // read and delete (QianfanFullControlAccessPolicy)
	PermRead Permission = "read" // list and describe only (a ...ReadAccessPolicy)
	PermNone Permission = "none" // nothing: every call answers 403 AccessDenied
)

// New returns a fake server.
func New(cfg Config) *Server {
	if len(cfg.Credentials) == 0 {
		cfg.Credentials = map[string]string{DefaultAccessKey: DefaultSecretKey}
	}
	if cfg.Permissions == nil {
		cfg.Permissions = map[string]Permission{}
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:        cfg,
		asm:        cfg.Assumptions.withDefaults(),
		deleted:    map[string]map[string]int{KindModel: {}, KindVersion: {}},
		stats:      Stats{Calls: map[string]int{}, Endpoints: map[string]int{}, Keys: map[string]KeyCalls{}},
		calls:      map[string][]time.Time{},
		logID:      2443985831,
		creds:      maps.Clone(cfg.Credentials),
		revoked:    map[string]bool{},
		perms:      maps.Clone(cfg.Permissions),
		v1OffAfter: cfg.V1OffAfter,
		v2OffAfter: cfg.V2OffAfter,
	}
	if cfg.Inventory != nil {
		s.inv = newStore(cfg.Inventory.clone())
	}
	s.setFaultsLocked(cfg.Faults)
	s.control = s.controlMux()
	return s
}

// SetFaults replaces the fault rules and reseeds the fault generator.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFaultsLocked(f)
}

func (s *Server) setFaultsLocked(f Faults) {
	s.faults = f
	s.deletesOK, s.dropped = 0, 0
	s.rng = rand.New(rand.NewPCG(uint64(f.Seed), 0x9e3779b97f4a7c15))
}

// SetAssumptions replaces the assumptions; zero fields take their defaults.
func (s *Server) SetAssumptions(a Assumptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asm = a.withDefaults()
}

// Assumptions returns the assumptions in force, defaults filled in.
func (s *Server) Assumptions() Assumptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asm
}

// SetV1Off switches every V1 endpoint off (answering Assumptions.V1Gone)
// or back on; on also clears Config.V1OffAfter.
func (s *Server) SetV1Off(off bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v1Off, s.v1OffAfter = off, 0
}

// SetV1OffAfter lets V1 serve n more calls from now, then switches it off.
func (s *Server) SetV1OffAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v1Off, s.v1OffAfter = false, s.v1Calls+n
}

// SetV2Off is SetV1Off for V2.
func (s *Server) SetV2Off(off bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v2Off, s.v2OffAfter = off, 0
}

// Revoke makes the access key unknown: its calls answer 401
// InvalidAccessKeyId until Restore.
func (s *Server) Revoke(accessKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[accessKey] = true
}

// Restore undoes Revoke.
func (s *Server) Restore(accessKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.revoked, accessKey)
}

// SetPermission sets what the access key may do; a call it may not make
// answers 403 AccessDenied.
func (s *Server) SetPermission(accessKey string, p Permission) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perms[accessKey] = p
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Calls = maps.Clone(s.stats.Calls)
	st.Keys = maps.Clone(s.stats.Keys)
	st.Endpoints = maps.Clone(s.stats.Endpoints)
	return st
}

// DeleteCount returns how many times id (int, int64 or string) of kind was
// actually deleted; a correct client makes it at most 1. With an inventory
// a model or version deleted through either of its IDs counts under both,
// and versions deleted with their model count too.
func (s *Server) DeleteCount(kind string, id any) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[kind][idKey(normalizeID(id))]
}

// Exists reports whether id (int, int64 or string) of kind exists now. In
// open-world mode every model and version exists unless Config.Invalid
// says otherwise or it was deleted, and no service exists.
func (s *Server) Exists(kind string, id any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	id = normalizeID(id)
	if s.inv == nil {
		if kind == KindService {
			return false
		}
		return s.deleted[kind][idKey(id)] == 0 && (s.cfg.Invalid == nil || !s.cfg.Invalid(kind, id))
	}
	switch kind {
	case KindModel:
		return s.inv.model(id) != nil
	case KindVersion:
		return s.inv.version(id) != nil
	case KindService:
		return s.inv.service(id) != nil
	}
	return false
}

// Inventory returns a copy of what the account holds now; nil in
// open-world mode.
func (s *Server) Inventory() *Inventory {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inv == nil {
		return nil
	}
	return s.inv.snapshot()
}

// LoadInventory replaces the inventory with a copy of inv (nil switches to
// open-world mode). Delete counts are kept.
func (s *Server) LoadInventory(inv *Inventory) error {
	if inv != nil {
		if err := inv.Validate(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inv = nil
	if inv != nil {
		s.inv = newStore(inv.clone())
	}
	return nil
}

// AddService adds a custom service (e.g. one deployed between a plan and
// its run). It needs an inventory.
func (s *Server) AddService(svc Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inv == nil {
		return errNoInventory
	}
	inv := s.inv.snapshot()
	inv.Services = append(inv.Services, svc)
	if err := inv.Validate(); err != nil {
		return err
	}
	s.inv.services = append(s.inv.services, &svc)
	return nil
}

// AddBatchTask adds a batch inference task. It needs an inventory.
func (s *Server) AddBatchTask(t BatchTask) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inv == nil {
		return errNoInventory
	}
	inv := s.inv.snapshot()
	inv.BatchTasks = append(inv.BatchTasks, t)
	if err := inv.Validate(); err != nil {
		return err
	}
	s.inv.tasks = append(s.inv.tasks, &t)
	return nil
}

// SetBatchTaskStatus moves a batch inference task (infer- ID) to status.
func (s *Server) SetBatchTaskStatus(taskID, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inv == nil {
		return errNoInventory
	}
	if !slices.Contains(TaskStatuses, status) {
		return fmt.Errorf("status %q is not one of %v", status, TaskStatuses)
	}
	for _, t := range s.inv.tasks {
		if t.ID == taskID {
			t.Status = status
			return nil
		}
	}
	return fmt.Errorf("no batch task %q", taskID)
}

// SetServiceVersion deploys the version (an amv- ID) on the service (a
// svco- ID): the service then runs it and its model, and is Serving.
func (s *Server) SetServiceVersion(serviceID, versionID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inv == nil {
		return errNoInventory
	}
	svc := s.inv.service(serviceID)
	if svc == nil {
		return fmt.Errorf("no service %q", serviceID)
	}
	sv := s.inv.version(versionID)
	if sv == nil {
		return fmt.Errorf("no version %q", versionID)
	}
	svc.Model, svc.Version, svc.Status = sv.model.m.IDStr, sv.v.IDStr, "Serving"
	return nil
}

func (s *Server) countLocked(outcome string) { s.stats.Calls[outcome]++ }

func (s *Server) count(outcome string) {
	s.mu.Lock()
	s.countLocked(outcome)
	s.mu.Unlock()
}

// ServeHTTP routes the API endpoints and the /_fake/ control endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		s.control.ServeHTTP(w, r)
		return
	}
	op, ok := route(r)
	if !ok {
		s.count(OutcomeNotFound)
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "NoSuchPath", "message": "not found"})
		return
	}
	s.serveAPI(w, r, op)
}

// roll is one call's fault decisions, drawn in a fixed order so that a seed
// reproduces the same faults for the same sequence of calls.
type roll struct {
	latency                       time.Duration
	f503, f336100, f500000, reset bool
	drop                          bool
}

func (s *Server) rollFaults() roll {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	return roll{
		latency: f.Latency,
		f503:    s.rng.Float64() < f.Rate503,
		f336100: s.rng.Float64() < f.Rate336100,
		f500000: s.rng.Float64() < f.Rate500000,
		reset:   s.rng.Float64() < f.RateReset,
		drop:    s.rng.Float64() < f.RateDropAfterDelete,
	}
}

// serveAPI runs one API call through the gateway's checks, in order: is the
// endpoint on, signature, key and permission, method, QPS cap, faults; then
// the operation, then perhaps a dropped answer.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, op operation) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return // the client went away
	}
	if a, gone := s.admitEndpoint(op, accessKeyOf(r)); gone {
		s.answer(w, a, OutcomeGone)
		return
	}
	if a, outcome, ok := s.authorize(r, op); !ok {
		s.answer(w, a, outcome)
		return
	}
	if r.Method != http.MethodPost {
		if op.v2 {
			s.answer(w, Answer{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "use POST"}, "")
		} else {
			s.apiError(w, 336101, "invalid HTTP method")
		}
		return
	}
	if !s.admit(accessKeyOf(r)) {
		if op.v2 {
			s.answer(w, s.Assumptions().V2Throttled, "")
		} else {
			s.apiError(w, 18, "Open api qps request limit reached")
		}
		return
	}
	f := s.rollFaults()
	if !s.preFaults(w, r, op, f) {
		return
	}
	s.mu.Lock()
	result, failed := op.run(s, body)
	var fail Answer // copied under the lock: failed may point into s.asm
	if failed != nil {
		fail = *failed
	}
	if failed == nil && op.write && s.faults.DropDeletes > s.dropped {
		s.deletesOK++
		if s.deletesOK%max(s.faults.DropEvery, 1) == 0 {
			s.dropped++
			f.drop = true
		}
	}
	s.mu.Unlock()
	if failed != nil {
		s.answer(w, fail, "")
		return
	}
	if f.drop {
		s.count(OutcomeDrop)
		hangUp(w)
		return
	}
	s.count(OutcomeOK)
	if op.v2 {
		writeJSON(w, http.StatusOK, map[string]any{"requestId": s.nextRequestID(), "result": result})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"log_id": s.nextLogID(), "result": result})
}

// preFaults plays the faults rolled to strike before the operation runs;
// false means the call was answered (or abandoned) and must not run.
func (s *Server) preFaults(w http.ResponseWriter, r *http.Request, op operation, f roll) bool {
	if f.latency > 0 {
		t := time.NewTimer(f.latency)
		select {
		case <-r.Context().Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
	switch {
	case f.f503:
		s.count(Outcome503)
		http.Error(w, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", http.StatusServiceUnavailable)
	case f.f336100 && op.v2, f.f500000 && op.v2:
		s.answer(w, Answer{Status: http.StatusInternalServerError, Code: "InternalError",
			Message: "We encountered an internal error. Please try again."}, "")
	case f.f336100:
		s.apiError(w, 336100, "try again later")
	case f.f500000:
		s.apiError(w, 500000, "console internal error")
	case f.reset:
		s.count(OutcomeReset)
		hangUp(w)
	default:
		return true
	}
	return false
}

// admitEndpoint counts the call and reports whether its API is switched off.
func (s *Server) admitEndpoint(op operation, ak string) (Answer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Endpoints[op.name]++
	kc := s.stats.Keys[ak]
	if op.write {
		s.stats.Deletes++
		kc.Deletes++
	} else {
		s.stats.Reads++
		kc.Reads++
	}
	s.stats.Keys[ak] = kc
	if op.v2 {
		s.v2Calls++
		return s.asm.V2Gone, s.v2Off || (s.v2OffAfter > 0 && s.v2Calls > s.v2OffAfter)
	}
	s.v1Calls++
	return s.asm.V1Gone, s.v1Off || (s.v1OffAfter > 0 && s.v1Calls > s.v1OffAfter)
}

// authorize checks the signature, then whether the key is revoked and what
// it may do.
func (s *Server) authorize(r *http.Request, op operation) (Answer, string, bool) {
	s.mu.Lock()
	creds := maps.Clone(s.creds)
	ak := accessKeyOf(r)
	revoked, perm := s.revoked[ak], cmp.Or(s.perms[ak], PermFull)
	s.mu.Unlock()
	if revoked {
		delete(creds, ak)
	}
	if err := verify(r, creds, s.cfg.Now(), s.cfg.MaxSkew); err != nil {
		ae := err.(*authError)
		return Answer{Status: http.StatusUnauthorized, Code: ae.code, Message: ae.msg}, OutcomeAuth, false
	}
	if perm == PermNone || (perm == PermRead && op.write) {
		s.mu.Lock()
		kc := s.stats.Keys[ak]
		kc.Denied++
		s.stats.Keys[ak] = kc
		s.mu.Unlock()
		return Answer{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Access denied."}, OutcomeDenied, false
	}
	return Answer{}, "", true
}

// answer writes an error answer and counts it under outcome, or under the
// answer's own code when outcome is empty.
func (s *Server) answer(w http.ResponseWriter, a Answer, outcome string) {
	s.count(cmp.Or(outcome, a.outcome()))
	a.write(w, s.nextLogID())
}

// admit applies the QPS cap over a sliding one-second window: one window
// for every call, or one per access key (Assumptions.QPSPerAccessKey).
func (s *Server) admit(ak string) bool {
	if s.cfg.QPS <= 0 {
		return true
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	window := ""
	if s.asm.QPSPerAccessKey {
		window = ak
	}
	calls := s.calls[window]
	keep := calls[:0]
	for _, t := range calls {
		if now.Sub(t) < time.Second {
			keep = append(keep, t)
		}
	}
	if len(keep) >= s.cfg.QPS {
		s.calls[window] = keep
		return false
	}
	s.calls[window] = append(keep, now)
	return true
}

// parseIDs accepts a non-empty list of all integers or all strings.
func parseIDs(body []byte, key string) ([]any, bool) {
	var req map[string]json.RawMessage
	if json.Unmarshal(body, &req) != nil {
		return nil, false
	}
	var raw []json.RawMessage
	if json.Unmarshal(req[key], &raw) != nil || len(raw) == 0 {
		return nil, false
	}
	ids := make([]any, 0, len(raw))
	var strs, ints int
	for _, item := range raw {
		id, ok := parseID(item)
		if !ok {
			return nil, false
		}
		if _, isStr := id.(string); isStr {
			strs++
		} else {
			ints++
		}
		ids = append(ids, id)
	}
	if strs > 0 && ints > 0 {
		return nil, false
	}
	return ids, true
}

// parseID reads one JSON ID: a string, or a whole number as int64.
func parseID(item json.RawMessage) (any, bool) {
	item = bytes.TrimSpace(item)
	if len(item) > 0 && item[0] == '"' {
		var s string
		if json.Unmarshal(item, &s) != nil {
			return nil, false
		}
		return s, true
	}
	n, err := strconv.ParseInt(string(item), 10, 64)
	if err != nil {
		return nil, false // float, bool, null, object...
	}
	return n, true
}

// openWorldDeleteLocked deletes every ID or none: an invalid, already
// deleted or duplicated ID, or a list over MaxIDs, rejects the whole list.
func (s *Server) openWorldDeleteLocked(kind string, ids []any) bool {
	s.stats.LargestBatch = max(s.stats.LargestBatch, len(ids))
	if s.cfg.MaxIDs > 0 && len(ids) > s.cfg.MaxIDs {
		return false
	}
	store := s.deleted[kind]
	seen := make(map[string]bool, len(ids))
	ok := true
	for _, id := range ids {
		k := idKey(id)
		if store[k] > 0 {
			s.stats.RepeatDeletes++
			ok = false
		}
		if seen[k] || (s.cfg.Invalid != nil && s.cfg.Invalid(kind, id)) {
			ok = false
		}
		seen[k] = true
	}
	if !ok {
		return false
	}
	for k := range seen {
		store[k]++
	}
	s.stats.IDsDeleted += len(ids)
	return true
}

func (s *Server) nextLogID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextLogIDLocked()
}

func (s *Server) nextLogIDLocked() string {
	s.logID++
	return strconv.FormatInt(s.logID, 10)
}

// nextRequestID is a V2 requestId, shaped like Baidu's UUIDs.
func (s *Server) nextRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logID++
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", s.logID, s.logID)
}

// apiError answers like the console API: HTTP 200 with error_code, log_id as a number.
func (s *Server) apiError(w http.ResponseWriter, code int, msg string) {
	s.answer(w, Answer{ErrorCode: code, Message: msg}, "")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// hangUp closes the connection without an answer, with a TCP reset where possible.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream instead
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
