// Package inventory is what qfpurge can see of a Qianfan account: every model
// and version with both ID forms where known, its name, type and creation
// time, and the custom services that use it. A Snapshot is built from
// complete listings only; a page that fails makes the whole read fail, so
// "absent" is never concluded from a partial answer. Int↔string ID pairs never
// change once Qianfan has shown them, so the Store remembers them in Redis.
package inventory

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Model is a model ("model set" in V2).
type Model struct {
	ID      string    `json:"id"`               // am-...
	IntID   int64     `json:"int_id,omitempty"` // 0 when no listing showed it
	Name    string    `json:"name"`
	Type    string    `json:"type,omitempty"`
	Created time.Time `json:"created"`
	// Versions are its versions' string IDs as the listing gave them.
	Versions []string `json:"versions,omitempty"`
}

// Version is one model version, as a detail call gives it.
type Version struct {
	ID      string    `json:"id"` // amv-...
	IntID   int64     `json:"int_id,omitempty"`
	Model   string    `json:"model"` // am-... of its model
	Version string    `json:"version,omitempty"`
	State   string    `json:"state,omitempty"`
	Created time.Time `json:"created"`
}

// Service is what makes a model or version in use: a custom service in any
// status, of either protocol version, or a batch inference task not yet
// ended (Kind says which).
type Service struct {
	Kind     UserKind `json:"kind,omitempty"`
	ID       string   `json:"id"` // svco-..., infer-..., or a V1 int ID as text
	Name     string   `json:"name"`
	Status   string   `json:"status"`
	Protocol int      `json:"protocol,omitempty"` // a service's protocolVersion, 1 or 2; 0 unknown
	Models   []string `json:"models,omitempty"`   // am-...
	Versions []string `json:"versions,omitempty"` // amv-...
}

// UserKind is what uses a model: a service or a batch inference task.
type UserKind string

// The kinds of user.
const (
	KindService   UserKind = "service"
	KindBatchTask UserKind = "batch inference task"
)

// Label names the user for people: `service NAME (svco-…, protocol v2,
// Serving)` or `batch inference task NAME (infer-…, Running)`; a user of no
// kind (made by hand, not read) is `NAME (ID, STATUS)`.
func (s Service) Label() string {
	var b strings.Builder
	if s.Kind != "" {
		b.WriteString(string(s.Kind) + " ")
	}
	b.WriteString(s.Name + " (" + s.ID + ", ")
	if s.Kind != KindBatchTask && s.Protocol != 0 {
		fmt.Fprintf(&b, "protocol v%d, ", s.Protocol)
	}
	b.WriteString(s.Status + ")")
	return b.String()
}

// Form is an ID form a listing can prove absent: kind and ID type.
type Form struct {
	Kind modelid.Kind
	Type modelid.IDType
}

func (f Form) String() string { return string(f.Kind) + ":" + string(f.Type) }

// FormOf is the form of an ID of kind k.
func FormOf(k modelid.Kind, id modelid.ID) Form { return Form{k, id.Type()} }

// Key renders an ID of kind k as "model:int:585" or "version:string:amv-x",
// the members of the Store's sets.
func Key(k modelid.Kind, id modelid.ID) string { return FormOf(k, id).String() + ":" + id.String() }

// Snapshot is the result of complete listings, started at Taken.
type Snapshot struct {
	Taken time.Time
	// Seq is the fleet's order stamp (fleet.Stamp) taken before the first
	// page was read: what "this listing came after that lost answer"
	// compares.
	Seq      int64
	Models   []Model
	Services []Service
	// Decides lists the ID forms whose absence from this snapshot proves
	// absence from the account.
	Decides    []Form
	present    map[string]bool
	extraPairs map[string]string // pairs seen outside Models (versions, late models)
}

// index builds the presence set from Models.
func (s *Snapshot) index() {
	s.present = make(map[string]bool, 2*len(s.Models))
	for _, m := range s.Models {
		s.present[Key(modelid.KindModel, modelid.StringID(m.ID))] = true
		if m.IntID != 0 {
			s.present[Key(modelid.KindModel, modelid.IntID(m.IntID))] = true
		}
		for _, v := range m.Versions {
			s.present[Key(modelid.KindVersion, modelid.StringID(v))] = true
		}
	}
}

// Keys returns the presence keys (see Key) of everything in the snapshot.
func (s *Snapshot) Keys() []string {
	if s.present == nil {
		s.index()
	}
	out := make([]string, 0, len(s.present))
	for k := range s.present {
		out = append(out, k)
	}
	return out
}

// Pairs returns the int↔string pairs the snapshot shows, keyed by Key of
// either form to the other ID's text.
func (s *Snapshot) Pairs() map[string]string {
	out := map[string]string{}
	for k, v := range s.extraPairs {
		out[k] = v
	}
	for _, m := range s.Models {
		if m.IntID != 0 && m.ID != "" {
			out[Key(modelid.KindModel, modelid.IntID(m.IntID))] = m.ID
			out[Key(modelid.KindModel, modelid.StringID(m.ID))] = strconv.FormatInt(m.IntID, 10)
		}
	}
	return out
}

// Parents maps every version the snapshot shows (amv-) to its model (am-):
// from the model listing, and from services that name both.
func (s *Snapshot) Parents() map[string]string {
	out := map[string]string{}
	for _, m := range s.Models {
		for _, v := range m.Versions {
			out[v] = m.ID
		}
	}
	for _, svc := range s.Services {
		// A service naming one model and its versions shows their parent.
		if ms := slices.Compact(slices.Sorted(slices.Values(svc.Models))); len(ms) == 1 {
			for _, v := range svc.Versions {
				out[v] = ms[0]
			}
		}
	}
	return out
}

// UsedBy maps every model and version ID a service runs (string forms) to
// the services that run it.
func (s *Snapshot) UsedBy() map[string][]Service {
	out := map[string][]Service{}
	for _, svc := range s.Services {
		for _, id := range svc.Models {
			out[id] = append(out[id], svc)
		}
		for _, id := range svc.Versions {
			out[id] = append(out[id], svc)
		}
	}
	return out
}
