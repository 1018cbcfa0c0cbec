// Package tasks holds qfpurge's Asynq task types, their payloads, the group
// aggregator that turns many small delete jobs into batches, and the batch
// handler that makes one signed Qianfan call per execution.
//
// Two task types carry deletions:
//
//   - TypeDelete: a small job (fewer IDs than a batch). It is enqueued into an
//     Asynq group named after its kind, ID type and a shard, and the
//     aggregator merges a group's jobs into one TypeDeleteBatch task.
//   - TypeDeleteBatch: a ready batch. The producer cuts large jobs into these
//     directly, so bulk purges skip aggregation; bisection and oversize splits
//     enqueue them too.
//
// Both types are handled by the same Handler: a batch holding one kind and
// one ID type, and no more than the batch size, is deleted with one API call
// per execution; anything else is first split into such batches.
package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Task type names, in Asynq's domain:verb habit.
const (
	TypeDelete      = "qianfan:delete"
	TypeDeleteBatch = "qianfan:delete-batch"
)

// MaxShards caps how many groups one kind and ID type is spread over; the
// worker's stranded-group sweeper knows every possible group name by it.
const MaxShards = 64

// DefaultBatchSize is the number of IDs sent in one batchDelete call.
const DefaultBatchSize = 100

// Payload is the JSON body of both task types. IDs sit under "model_ids" so
// asynqmon shows them readably.
type Payload struct {
	Kind modelid.Kind `json:"kind"`
	IDs  []modelid.ID `json:"model_ids"`
	// Parent is the task this batch was split from, and Split says why.
	Parent string `json:"parent,omitempty"`
	Split  string `json:"split,omitempty"`
	// Run and Rule name the rule run that planned these deletions; such
	// IDs are checked for services using them right before the call.
	Run  string `json:"run,omitempty"`
	Rule string `json:"rule,omitempty"`
	// DeleteInUse is set by a rule with protect_in_use: false: its run's
	// IDs are deleted without the service check.
	DeleteInUse bool `json:"delete_in_use,omitempty"`
	// LostIn names the batch whose call lost its answer when this batch was
	// split from it after a listing; a deletion by any batch of that line
	// shows the lost call deleted nothing (V1 applies a batch whole or not
	// at all).
	LostIn string `json:"lost_in,omitempty"`
	// Unsure: no listing could tell whether the lost call deleted these
	// IDs, so an ID refused on its own is dead only if a batch of the same
	// line went through; otherwise it is presumed deleted.
	Unsure bool `json:"unsure,omitempty"`
	// Missing holds the IDs of a recheck batch that a detail call showed
	// missing before the lost call: a recheck batch makes no detail read
	// of its own, and a listing's absence is no such evidence (a listing
	// may miss a model).
	Missing []modelid.ID `json:"missing,omitempty"`
	// RequestedBy names who asked (an API token's name, enqueue --as, a
	// schedule entry) and Key the request (its idempotency key), for every
	// ID of the batch; Origins replaces both when the aggregator merged
	// jobs of several requests.
	RequestedBy string `json:"requested_by,omitempty"`
	Key         string `json:"key,omitempty"`
	// Names are the name globs (path.Match) of the asker's scope, for every
	// ID of the batch (an API token's names): the handler sends only IDs
	// whose model's name matches one, and refuses the rest.
	Names []string `json:"names,omitempty"`
	// Traceparent and Tracestate are the W3C trace context of the traced
	// request (package tracing) the batch's IDs came from; Origins carry
	// each request's when the aggregator merged several.
	Traceparent string   `json:"traceparent,omitempty"`
	Tracestate  string   `json:"tracestate,omitempty"`
	Origins     []Origin `json:"origins,omitempty"`
	// Asked is the order stamp after which a listing placed this batch's
	// int IDs for the in-use check (its parent's ask): a listing stamped
	// later answers for the split batches too, without asking again.
	Asked int64 `json:"asked,omitempty"`
	// Rejected holds payloads the aggregator could not read; the handler
	// dead-letters them so nothing is dropped silently.
	Rejected []string `json:"rejected,omitempty"`
}

// DecodePayload reads and checks a task payload.
func DecodePayload(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode payload: %w", err)
	}
	if _, err := modelid.ParseKind(string(p.Kind)); err != nil {
		return p, fmt.Errorf("decode payload: %w", err)
	}
	for _, id := range p.IDs {
		if err := id.Validate(); err != nil {
			return p, fmt.Errorf("decode payload: %w", err)
		}
	}
	if len(p.IDs) == 0 && len(p.Rejected) == 0 {
		return p, errors.New("decode payload: no model_ids")
	}
	return p, nil
}

// Options are the Asynq options every qfpurge task carries.
type Options struct {
	// MaxRetry counts failed attempts before a batch is dead-lettered.
	// Throttling does not use them up. Defaults to 12.
	MaxRetry int
	// Timeout bounds one execution. Defaults to 5m.
	Timeout time.Duration
	// Retention keeps completed batches and their results visible in
	// asynqmon as an audit trail. Defaults to 7 days.
	Retention time.Duration
}

// WithDefaults fills the options left zero.
func (o Options) WithDefaults() Options {
	if o.MaxRetry == 0 {
		o.MaxRetry = 12
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Retention == 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	return o
}

func (o Options) asynq() []asynq.Option {
	o = o.WithDefaults()
	return []asynq.Option{
		asynq.Queue(asynqlayout.Queue),
		asynq.MaxRetry(o.MaxRetry),
		asynq.Timeout(o.Timeout),
		asynq.Retention(o.Retention),
	}
}

// NewBatchTask returns a ready batch task. Extra options (TaskID, ProcessAt)
// are appended.
func NewBatchTask(p Payload, o Options, extra ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeDeleteBatch, b, append(o.asynq(), extra...)...), nil
}

// NewDeleteTask returns a small job that waits in its group for aggregation.
func NewDeleteTask(p Payload, group string, o Options) (*asynq.Task, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeDelete, b, append(o.asynq(), asynq.Group(group))...), nil
}

// GroupName names the Asynq group of a kind, ID type and shard, e.g.
// "model/int/03".
func GroupName(k modelid.Kind, t modelid.IDType, shard int) string {
	return fmt.Sprintf("%s/%s/%02d", k, t, shard)
}

// ParseGroupName is the inverse of GroupName.
func ParseGroupName(g string) (modelid.Kind, modelid.IDType, int, error) {
	parts := strings.Split(g, "/")
	if len(parts) != 3 {
		return "", "", 0, fmt.Errorf("group %q is not kind/type/shard", g)
	}
	k, err := modelid.ParseKind(parts[0])
	if err != nil {
		return "", "", 0, err
	}
	t := modelid.IDType(parts[1])
	if t != modelid.IDInt && t != modelid.IDString {
		return "", "", 0, fmt.Errorf("group %q: unknown ID type", g)
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 0 || n >= MaxShards {
		return "", "", 0, fmt.Errorf("group %q: bad shard", g)
	}
	return k, t, n, nil
}

// AllGroupNames lists every group name the producer can use.
func AllGroupNames() []string {
	var names []string
	for _, k := range []modelid.Kind{modelid.KindModel, modelid.KindVersion} {
		for _, t := range []modelid.IDType{modelid.IDInt, modelid.IDString} {
			for s := range MaxShards {
				names = append(names, GroupName(k, t, s))
			}
		}
	}
	return names
}

// Shard picks a stable shard for an ID, spreading load evenly over groups.
func Shard(id modelid.ID, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(id.String()))
	return int(h.Sum32() % uint32(shards))
}

// Origin is who asked for some IDs of a merged batch, under which key,
// within which name scope, and the request's trace context when it was
// traced.
type Origin struct {
	Key         string       `json:"key,omitempty"`
	RequestedBy string       `json:"requested_by,omitempty"`
	Names       []string     `json:"names,omitempty"`
	Traceparent string       `json:"traceparent,omitempty"`
	Tracestate  string       `json:"tracestate,omitempty"`
	IDs         []modelid.ID `json:"model_ids"`
}

// OriginOf returns who asked for id and under which key.
func (p Payload) OriginOf(id modelid.ID) (key, requestedBy string) {
	for _, o := range p.Origins {
		for _, x := range o.IDs {
			if x == id {
				return o.Key, o.RequestedBy
			}
		}
	}
	return p.Key, p.RequestedBy
}

// NamesOf returns the name globs that bound id's deletion; nil means any
// name.
func (p Payload) NamesOf(id modelid.ID) []string {
	for _, o := range p.Origins {
		if slices.Contains(o.IDs, id) {
			return o.Names
		}
	}
	return p.Names
}
