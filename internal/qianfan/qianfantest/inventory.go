package qianfantest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Inventory is what the fake's account holds; it is also the JSON file
// format of cmd/fakeqianfan -inventory and of GET/PUT /_fake/inventory:
//
//	{"models": [{"id": 12648, "idStr": "am-gmptxxxfci", "name": "ci-run-0001",
//	             "type": 0, "createTime": "2024-01-26T11:31:38+08:00",
//	             "versions": [{"id": 15001, "idStr": "amv-prjg6zqe1bhb", "version": 1,
//	                           "state": "Ready", "createTime": "2024-01-27T09:00:00+08:00"}]}],
//	 "services": [{"id": 199, "idStr": "svco-3fx8k2l0qa1z", "name": "svc-prod-chat",
//	               "status": "Serving", "model": "am-gmptxxxfci", "version": "amv-prjg6zqe1bhb",
//	               "protocolVersion": 2}],
//	 "batchTasks": [{"id": "infer-n509xxxhqq3", "name": "nightly-eval", "status": "Running",
//	                 "version": "amv-prjg6zqe1bhb", "createTime": "2024-02-01T10:00:00+08:00"}]}
//
// Every model and version has both ID forms; a service names the model and
// the version it runs by their string IDs (either may be empty); a batch
// inference task names the version it runs (empty: an endpoint alone).
type Inventory struct {
	Models     []Model     `json:"models"`
	Services   []Service   `json:"services"`
	BatchTasks []BatchTask `json:"batchTasks,omitempty"`
}

// Model is a model (a "model set" in V2) with its versions.
type Model struct {
	ID         int64     `json:"id"`    // V1 modelId
	IDStr      string    `json:"idStr"` // am-...
	Name       string    `json:"name"`
	Type       int       `json:"type"` // V1 modelType: 0 LLM, 1 text-to-image, ...
	CreateTime time.Time `json:"createTime"`
	Versions   []Version `json:"versions"`
	// Unlisted: the model exists (deletes and detail calls see it) but no
	// listing returns it. Baidu does not say that a listing returns every
	// model of the account; a client that takes absence from a listing as
	// proof must be safe when one does not.
	Unlisted bool `json:"unlisted,omitempty"`
}

// Version is one model version (a "model" in V2).
type Version struct {
	ID         int64     `json:"id"`    // V1 modelVersionId
	IDStr      string    `json:"idStr"` // amv-...
	Version    int       `json:"version"`
	State      string    `json:"state"` // Ready, Creating, Fail
	CreateTime time.Time `json:"createTime"`
}

// Service is a custom (user-deployed) service.
type Service struct {
	ID      int64  `json:"id"`    // V1 serviceId
	IDStr   string `json:"idStr"` // svco-...
	Name    string `json:"name"`
	Status  string `json:"status"`  // a ServiceStatuses value
	Model   string `json:"model"`   // am- ID of the model it runs
	Version string `json:"version"` // amv- ID of the version it runs
	// ProtocolVersion is the calling protocol it was deployed with, 1 or 2;
	// absent (0) is 1, as Baidu documents DescribeServices' default.
	ProtocolVersion int `json:"protocolVersion,omitempty"`
}

// protocol is the service's protocol version, absent read as 1.
func (s *Service) protocol() int { return cmp.Or(s.ProtocolVersion, 1) }

// ServiceStatuses are V2's runStatus values; V1 calls Serving "Done".
var ServiceStatuses = []string{"New", "Deploying", "Serving", "Failed", "Stopped"}

// BatchTask is a batch inference task (V2 /v2/batchinference).
type BatchTask struct {
	ID         string    `json:"id"` // infer-...
	Name       string    `json:"name"`
	Status     string    `json:"status"`  // a TaskStatuses value
	Version    string    `json:"version"` // amv- ID of the version it runs; empty: an endpoint alone
	CreateTime time.Time `json:"createTime"`
}

// TaskStatuses are a batch inference task's runStatus values.
var TaskStatuses = []string{"Queuing", "Running", "Stopping", "Done", "Stopped", "Failed", "Expired"}

// taskActive: the states in which a task still reads its version.
func taskActive(status string) bool {
	return status == "Queuing" || status == "Running" || status == "Stopping"
}

// Generate describes an inventory to make up.
type Generate struct {
	Models   int // number of models
	Versions int // versions per model
	Services int // custom services, each running a random model's random version
	// BatchTasks are batch inference tasks in random states, each on a
	// random model's random version.
	BatchTasks int
	Seed       int64 // same seed, same inventory
	// Span is how far back creation times go from now. Defaults to a year.
	Span time.Duration
}

// namePatterns are the kinds of names a cleanup policy tells apart.
var namePatterns = []string{"ci-run-%04d", "exp-%s-%d", "prod-%s-%d", "%s-%d-keep"}

var nameWords = []string{"chat", "search", "summary", "ernie", "llama", "qa", "embed", "vision"}

// cst is Beijing time, the offset Baidu's examples carry.
var cst = time.FixedZone("CST", 8*3600)

// NewInventory makes up an inventory from g, with creation times spread over
// g.Span before now.
func NewInventory(g Generate, now time.Time) *Inventory {
	rng := rand.New(rand.NewPCG(uint64(g.Seed), 0x2545f4914f6cdd1d))
	span := cmp.Or(g.Span, 365*24*time.Hour)
	now = now.In(cst).Truncate(time.Second)
	seen := map[string]bool{}
	strID := func(prefix string) string {
		for {
			const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
			b := make([]byte, 12)
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			if id := prefix + string(b); !seen[id] {
				seen[id] = true
				return id
			}
		}
	}
	inv := &Inventory{Models: []Model{}, Services: []Service{}}
	for i := range g.Models {
		word := nameWords[rng.IntN(len(nameWords))]
		var name string
		switch p := namePatterns[i%len(namePatterns)]; strings.Count(p, "%") {
		case 1:
			name = fmt.Sprintf(p, i)
		default:
			name = fmt.Sprintf(p, word, i)
		}
		created := now.Add(-time.Duration(rng.Int64N(int64(span))))
		m := Model{ID: 10000 + int64(i), IDStr: strID("am-"), Name: name, Type: rng.IntN(6),
			CreateTime: created.Truncate(time.Second), Versions: []Version{}}
		for v := range g.Versions {
			vc := created.Add(time.Duration(rng.Int64N(int64(now.Sub(created)) + 1)))
			m.Versions = append(m.Versions, Version{ID: 100000 + int64(i)*1000 + int64(v), IDStr: strID("amv-"),
				Version: v + 1, State: "Ready", CreateTime: vc.Truncate(time.Second)})
		}
		inv.Models = append(inv.Models, m)
	}
	for i := range g.Services {
		// Every other service was deployed with the V2 calling protocol.
		s := Service{ID: 100 + int64(i), IDStr: strID("svco-"), Status: ServiceStatuses[rng.IntN(len(ServiceStatuses))], ProtocolVersion: 1 + i%2}
		if len(inv.Models) > 0 {
			m := inv.Models[rng.IntN(len(inv.Models))]
			s.Model, s.Name = m.IDStr, "svc-"+m.Name
			if len(m.Versions) > 0 {
				s.Version = m.Versions[rng.IntN(len(m.Versions))].IDStr
			}
		}
		s.Name = cmp.Or(s.Name, fmt.Sprintf("svc-%d", i))
		inv.Services = append(inv.Services, s)
	}
	for i := range g.BatchTasks {
		task := BatchTask{ID: strID("infer-"), Name: fmt.Sprintf("batch-%d", i), Status: TaskStatuses[rng.IntN(len(TaskStatuses))],
			CreateTime: now.Add(-time.Duration(rng.Int64N(int64(span)))).Truncate(time.Second)}
		if len(inv.Models) > 0 {
			if m := inv.Models[rng.IntN(len(inv.Models))]; len(m.Versions) > 0 {
				task.Version = m.Versions[rng.IntN(len(m.Versions))].IDStr
			}
		}
		inv.BatchTasks = append(inv.BatchTasks, task)
	}
	return inv
}

// ReadInventory decodes an inventory in the JSON file format and checks it.
func ReadInventory(r io.Reader) (*Inventory, error) {
	var inv Inventory
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&inv); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	return &inv, nil
}

// WriteJSON encodes inv in the JSON file format.
func (inv *Inventory) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(inv)
}

// Validate reports the first ID that is missing, malformed, repeated, or
// that a service names but the inventory lacks.
func (inv *Inventory) Validate() error {
	ints := map[string]bool{}
	strs := map[string]bool{}
	versionOf := map[string]string{}
	check := func(kind string, id int64, s, prefix string) error {
		key := fmt.Sprintf("%s:%d", kind, id)
		switch {
		case id <= 0:
			return fmt.Errorf("inventory: %s %q has no positive int ID", kind, s)
		case !strings.HasPrefix(s, prefix) || len(s) == len(prefix):
			return fmt.Errorf("inventory: %s %d: string ID %q must start with %q", kind, id, s, prefix)
		case ints[key] || strs[s]:
			return fmt.Errorf("inventory: %s %d / %q appears twice", kind, id, s)
		}
		ints[key], strs[s] = true, true
		return nil
	}
	for _, m := range inv.Models {
		if err := check(KindModel, m.ID, m.IDStr, "am-"); err != nil {
			return err
		}
		for _, v := range m.Versions {
			if err := check(KindVersion, v.ID, v.IDStr, "amv-"); err != nil {
				return err
			}
			versionOf[v.IDStr] = m.IDStr
		}
	}
	for _, s := range inv.Services {
		if err := check(KindService, s.ID, s.IDStr, "svco-"); err != nil {
			return err
		}
		if s.ProtocolVersion < 0 || s.ProtocolVersion > 2 {
			return fmt.Errorf("inventory: service %s: protocolVersion %d is not 1 or 2", s.IDStr, s.ProtocolVersion)
		}
		if !slices.Contains(ServiceStatuses, s.Status) {
			return fmt.Errorf("inventory: service %s: status %q is not one of %v", s.IDStr, s.Status, ServiceStatuses)
		}
		if s.Model != "" && !strs[s.Model] {
			return fmt.Errorf("inventory: service %s runs unknown model %q", s.IDStr, s.Model)
		}
		if s.Version != "" {
			m, ok := versionOf[s.Version]
			if !ok {
				return fmt.Errorf("inventory: service %s runs unknown version %q", s.IDStr, s.Version)
			}
			if s.Model != "" && m != s.Model {
				return fmt.Errorf("inventory: service %s: version %s is not of model %s", s.IDStr, s.Version, s.Model)
			}
		}
	}
	return inv.validateTasks(strs, versionOf)
}

func (inv *Inventory) validateTasks(strs map[string]bool, versionOf map[string]string) error {
	for _, t := range inv.BatchTasks {
		switch {
		case !strings.HasPrefix(t.ID, "infer-") || len(t.ID) == len("infer-"):
			return fmt.Errorf("inventory: batch task ID %q must start with %q", t.ID, "infer-")
		case strs[t.ID]:
			return fmt.Errorf("inventory: batch task %s appears twice", t.ID)
		case !slices.Contains(TaskStatuses, t.Status):
			return fmt.Errorf("inventory: batch task %s: status %q is not one of %v", t.ID, t.Status, TaskStatuses)
		}
		if _, ok := versionOf[t.Version]; t.Version != "" && !ok {
			return fmt.Errorf("inventory: batch task %s runs unknown version %q", t.ID, t.Version)
		}
		strs[t.ID] = true
	}
	return nil
}

// clone deep-copies inv.
func (inv *Inventory) clone() *Inventory {
	out := &Inventory{Models: make([]Model, len(inv.Models)), Services: slices.Clone(inv.Services), BatchTasks: slices.Clone(inv.BatchTasks)}
	for i, m := range inv.Models {
		m.Versions = slices.Clone(m.Versions)
		out.Models[i] = m
	}
	if out.Services == nil {
		out.Services = []Service{}
	}
	return out
}

// errNoInventory: the fake runs in open-world mode and cannot list.
var errNoInventory = errors.New("the fake has no inventory (open-world mode): configure one to list or describe")
