// Package fakeqianfan is a faithful in-memory fake of Qianfan's V1 model
// batch-delete endpoints, for tests (wrap it in httptest.NewServer) and as
// the cmd/fakeqianfan binary.
//
// The fake verifies every bce-auth-v1 signature with its own code (not
// Baidu's signer), holds a model store in which every ID exists unless
// Config.Invalid says otherwise, deletes atomically, enforces a QPS cap and
// a maximum list length, injects faults by seeded rates, and counts
// outcomes for assertions. Besides the API it serves GET /_fake/stats (Stats
// as JSON) and POST /_fake/faults (Faults as JSON) for other processes.
package fakeqianfan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Kinds of ID, as passed to Config.Invalid and Server.DeleteCount.
const (
	KindModel   = "model"   // /wenxinworkshop/modelrepo/model/batchDelete, modelIDs
	KindVersion = "version" // /wenxinworkshop/modelrepo/model/version/batchDelete, modelVersionIds
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
)

// Config configures a fake Server.
type Config struct {
	// Credentials maps access key to secret key. Defaults to
	// {DefaultAccessKey: DefaultSecretKey}.
	Credentials map[string]string
	// Invalid reports IDs that do not exist (deleting them answers 500001).
	// id is an int64 or a string. Every other ID exists until deleted.
	// InvalidIDs builds one from a list. Defaults to nil: every ID exists.
	Invalid func(kind string, id any) bool
	// MaxIDs: a longer list answers 500001. Defaults to 0, unlimited.
	MaxIDs int
	// QPS: more than QPS calls in any one-second window answer error_code
	// 18. Calls rejected with 401 do not count. Defaults to 0, off.
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
}

// Stats are the fake's counters.
type Stats struct {
	Calls         map[string]int `json:"calls"`          // by outcome: "ok", "500001", "18", "503", "reset", "drop", "401", ...
	IDsDeleted    int            `json:"ids_deleted"`    // IDs actually deleted
	RepeatDeletes int            `json:"repeat_deletes"` // IDs in requests that were already deleted
	LargestBatch  int            `json:"largest_batch"`  // longest well-formed list received
}

// Server is the fake; it is an http.Handler and safe for concurrent use.
type Server struct {
	cfg Config

	mu      sync.Mutex
	faults  Faults
	rng     *rand.Rand
	deleted map[string]map[string]int // kind -> idKey -> times deleted
	calls   []time.Time               // recent accepted calls, for the QPS window
	stats   Stats
	logID   int64
}

// New returns a fake server.
func New(cfg Config) *Server {
	if len(cfg.Credentials) == 0 {
		cfg.Credentials = map[string]string{DefaultAccessKey: DefaultSecretKey}
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:     cfg,
		deleted: map[string]map[string]int{KindModel: {}, KindVersion: {}},
		stats:   Stats{Calls: map[string]int{}},
		logID:   2443985831,
	}
	s.setFaultsLocked(cfg.Faults)
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
	s.rng = rand.New(rand.NewPCG(uint64(f.Seed), 0x9e3779b97f4a7c15))
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Calls = make(map[string]int, len(s.stats.Calls))
	for k, v := range s.stats.Calls {
		st.Calls[k] = v
	}
	return st
}

// DeleteCount returns how many times id (int, int64 or string) of kind was
// actually deleted; a correct client makes it at most 1.
func (s *Server) DeleteCount(kind string, id any) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[kind][idKey(normalizeID(id))]
}

func (s *Server) count(outcome string) {
	s.mu.Lock()
	s.stats.Calls[outcome]++
	s.mu.Unlock()
}

// ServeHTTP routes the two API endpoints and the /_fake/ control endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/wenxinworkshop/modelrepo/model/batchDelete":
		s.serveDelete(w, r, KindModel, "modelIDs")
	case "/wenxinworkshop/modelrepo/model/version/batchDelete":
		s.serveDelete(w, r, KindVersion, "modelVersionIds")
	case "/_fake/stats":
		writeJSON(w, http.StatusOK, s.Stats())
	case "/_fake/faults":
		if r.Method != http.MethodPost {
			http.Error(w, "POST Faults as JSON", http.StatusMethodNotAllowed)
			return
		}
		var f Faults
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
		w.WriteHeader(http.StatusNoContent)
	default:
		s.count(OutcomeNotFound)
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "NoSuchPath", "message": "not found"})
	}
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

func (s *Server) serveDelete(w http.ResponseWriter, r *http.Request, kind, key string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return // the client went away
	}
	if err := verify(r, s.cfg.Credentials, s.cfg.Now(), s.cfg.MaxSkew); err != nil {
		s.count(OutcomeAuth)
		ae := err.(*authError)
		w.Header().Set("X-Bce-Error-Code", ae.code)
		w.Header().Set("X-Bce-Error-Message", ae.msg)
		writeJSON(w, http.StatusUnauthorized, map[string]string{
			"requestId": s.nextLogID(), "code": ae.code, "message": ae.msg,
		})
		return
	}
	if r.Method != http.MethodPost {
		s.apiError(w, 336101, "invalid HTTP method")
		return
	}
	if !s.admit() {
		s.apiError(w, 18, "Open api qps request limit reached")
		return
	}
	f := s.rollFaults()
	if f.latency > 0 {
		t := time.NewTimer(f.latency)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	switch {
	case f.f503:
		s.count(Outcome503)
		http.Error(w, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", http.StatusServiceUnavailable)
		return
	case f.f336100:
		s.apiError(w, 336100, "try again later")
		return
	case f.f500000:
		s.apiError(w, 500000, "console internal error")
		return
	case f.reset:
		s.count(OutcomeReset)
		hangUp(w)
		return
	}
	ids, ok := parseIDs(body, key)
	if !ok || !s.deleteAll(kind, ids) {
		s.apiError(w, 500001, "param invalid")
		return
	}
	if f.drop {
		s.count(OutcomeDrop)
		hangUp(w)
		return
	}
	s.count(OutcomeOK)
	writeJSON(w, http.StatusOK, map[string]any{"log_id": s.nextLogID(), "result": map[string]any{}})
}

// admit applies the QPS cap over a sliding one-second window.
func (s *Server) admit() bool {
	if s.cfg.QPS <= 0 {
		return true
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.calls[:0]
	for _, t := range s.calls {
		if now.Sub(t) < time.Second {
			keep = append(keep, t)
		}
	}
	s.calls = keep
	if len(s.calls) >= s.cfg.QPS {
		return false
	}
	s.calls = append(s.calls, now)
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
		item = bytes.TrimSpace(item)
		if len(item) > 0 && item[0] == '"' {
			var s string
			if json.Unmarshal(item, &s) != nil {
				return nil, false
			}
			strs++
			ids = append(ids, s)
			continue
		}
		n, err := strconv.ParseInt(string(item), 10, 64)
		if err != nil {
			return nil, false // float, bool, null, object...
		}
		ints++
		ids = append(ids, n)
	}
	if strs > 0 && ints > 0 {
		return nil, false
	}
	return ids, true
}

// deleteAll deletes every ID or none: an invalid, already deleted or
// duplicated ID, or a list over MaxIDs, rejects the whole list.
func (s *Server) deleteAll(kind string, ids []any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	s.logID++
	return strconv.FormatInt(s.logID, 10)
}

// apiError answers like the console API: HTTP 200 with error_code, log_id as a number.
func (s *Server) apiError(w http.ResponseWriter, code int, msg string) {
	s.count(strconv.Itoa(code))
	id, _ := strconv.ParseInt(s.nextLogID(), 10, 64)
	writeJSON(w, http.StatusOK, map[string]any{"error_code": code, "error_msg": msg, "log_id": id})
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
