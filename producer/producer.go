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
// anything is enqueued. String IDs are Qianfan's: am-… for models, amv-…
// for model versions. Producer.Stream takes IDs one at a time for inputs
// too large to hold. It is the public face of qfpurge's internal enqueue
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

// ParseID reads one ID written as text: 585 is an int ID, am-… and amv-…
// string IDs, anything else an error; see package modelid for the rule.
func ParseID(s string) (ID, error) { return modelid.ParseID(s) }

// ParseIDs reads IDs from text (lines or JSON) for kind k, refusing the
// whole input when any entry is invalid; see modelid.ParseIDs.
func ParseIDs(r io.Reader, k Kind) ([]ID, error) { return modelid.ParseIDs(r, k) }

// Scanner reads IDs from text one at a time; see modelid.Scanner.
type Scanner = modelid.Scanner

// NewScanner reads IDs of kind k from r; see modelid.NewScanner.
func NewScanner(r io.Reader, k Kind) *Scanner { return modelid.NewScanner(r, k) }

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

// Stream enqueues one request's IDs as they come, a batch at a time.
type Stream = enqueue.Stream

// DedupeWindow is how many distinct IDs a Stream remembers to drop repeats.
const DedupeWindow = enqueue.DedupeWindow

// ErrNoIDs rejects an empty request.
var ErrNoIDs = enqueue.ErrNoIDs

// ErrKeyConflict: the request's Key was used before for other IDs or
// another kind; nothing was enqueued.
var ErrKeyConflict = enqueue.ErrKeyConflict

// Digest sums a streamed request's IDs for Request.Digest.
type Digest = enqueue.Digest

// CheckWhen reports why a time cannot be a deletion's (more than a minute
// past, or more than a year ahead); every producer shares this horizon.
var CheckWhen = enqueue.CheckWhen

// CheckDelay is CheckWhen for a delay.
var CheckDelay = enqueue.CheckDelay

// New returns a Producer on a go-redis client, which the caller keeps
// owning and closes.
func New(rdb redis.UniversalClient, cfg Config) (*Producer, error) { return enqueue.New(rdb, cfg) }

// Validate checks a request without enqueuing anything.
func Validate(r Request) error { return enqueue.Validate(r) }
