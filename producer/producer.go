// Package producer enqueues Qianfan model deletions for qfpurge workers.
// Other Go services import it to hand deletions over without shelling out:
//
//	p, err := producer.New(rdb, producer.Config{})
//	rcpt, err := p.Enqueue(ctx, producer.Request{
//		Kind: producer.KindModel,
//		IDs:  []producer.ID{producer.IntID(585), producer.StringID("am-xyz")},
//	})
//
// IDs of both types are split by type (Qianfan rejects mixed lists),
// duplicates collapse, and invalid IDs reject the whole request before
// anything is enqueued. It is the public face of qfpurge's internal enqueue
// and modelid packages: every name here is theirs.
package producer

import (
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Kind is the resource a deletion targets.
type Kind = modelid.Kind

// The kinds.
const (
	KindModel   = modelid.KindModel
	KindVersion = modelid.KindVersion
)

// ID is one model or model version ID, int or string.
type ID = modelid.ID

// IntID returns an int ID such as 585.
func IntID(n int64) ID { return modelid.IntID(n) }

// StringID returns a string ID such as "am-xxx".
func StringID(s string) ID { return modelid.StringID(s) }

// ParseKind accepts "model" and "version".
func ParseKind(s string) (Kind, error) { return modelid.ParseKind(s) }

// ParseIDs reads IDs from text; see modelid.ParseIDs.
func ParseIDs(r io.Reader, asString bool) ([]ID, error) { return modelid.ParseIDs(r, asString) }

// InvalidID is one rejected ID.
type InvalidID = modelid.InvalidID

// InvalidIDsError rejects a request; nothing was enqueued.
type InvalidIDsError = modelid.InvalidIDsError

// Config configures a Producer.
type Config = enqueue.Config

// DefaultShards is the number of groups per kind and ID type.
const DefaultShards = enqueue.DefaultShards

// Producer enqueues deletions. It is safe for concurrent use.
type Producer = enqueue.Producer

// Request is one deletion job.
type Request = enqueue.Request

// Receipt says what a request enqueued.
type Receipt = enqueue.Receipt

// Batch is one enqueued task.
type Batch = enqueue.Batch

// ErrNoIDs rejects an empty request.
var ErrNoIDs = enqueue.ErrNoIDs

// New returns a Producer on a go-redis client, which the caller keeps
// owning and closes.
func New(rdb redis.UniversalClient, cfg Config) (*Producer, error) { return enqueue.New(rdb, cfg) }

// Validate checks a request without enqueuing anything.
func Validate(r Request) error { return enqueue.Validate(r) }
