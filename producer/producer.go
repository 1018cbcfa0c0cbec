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
// too large to hold.
//
// Every type here is the package's own; the work is done by the engine
// the workers, the HTTP API and the schedules enqueue through, so a
// deletion enqueued here is the same as one enqueued by any of them.
package producer

import (
	"context"
	"errors"
	"go.opentelemetry.io/otel/trace"
	"io"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Kind is the resource a deletion targets.
type Kind string

// The kinds.
const (
	KindModel   Kind = Kind(modelid.KindModel)   // models: int IDs and am-… IDs
	KindVersion Kind = Kind(modelid.KindVersion) // model versions: int IDs and amv-… IDs
)

// ParseKind accepts "model" and "version".
func ParseKind(s string) (Kind, error) {
	k, err := modelid.ParseKind(s)
	return Kind(k), err
}

// ID is one model or model version ID: an int ID such as 585, or a string
// ID such as am-xxx. The zero ID is invalid. It marshals to JSON as a
// number or a string, as Qianfan writes it.
type ID struct{ id modelid.ID }

// IntID returns an int ID such as 585.
func IntID(n int64) ID { return ID{modelid.IntID(n)} }

// StringID returns a string ID such as "am-xxx".
func StringID(s string) ID { return ID{modelid.StringID(s)} }

// ParseID reads one ID written as text: 585 is an int ID, am-… and amv-…
// string IDs, anything else an error.
func ParseID(s string) (ID, error) {
	id, err := modelid.ParseID(s)
	return ID{id}, err
}

// String is the ID as Qianfan writes it.
func (id ID) String() string { return id.id.String() }

// Int returns an int ID's number; ok is false for a string ID.
func (id ID) Int() (n int64, ok bool) { return id.id.Int() }

// Type is "int" or "string".
func (id ID) Type() string { return string(id.id.Type()) }

// Validate reports why the ID cannot be deleted, if it cannot.
func (id ID) Validate() error { return id.id.Validate() }

// MarshalJSON writes an int ID as a number and a string ID as a string.
func (id ID) MarshalJSON() ([]byte, error) { return id.id.MarshalJSON() }

// UnmarshalJSON reads an ID written as a number or a string.
func (id *ID) UnmarshalJSON(b []byte) error { return id.id.UnmarshalJSON(b) }

func toInternal(ids []ID) []modelid.ID {
	out := make([]modelid.ID, len(ids))
	for i, id := range ids {
		out[i] = id.id
	}
	return out
}

// ParseIDs reads IDs from text (one per line, or a JSON array of numbers
// and strings) for kind k, refusing the whole input with an
// *InvalidIDsError when any entry is invalid.
func ParseIDs(r io.Reader, k Kind) ([]ID, error) {
	ids, err := modelid.ParseIDs(r, modelid.Kind(k))
	if err != nil {
		return nil, publicError(err)
	}
	out := make([]ID, len(ids))
	for i, id := range ids {
		out[i] = ID{id}
	}
	return out, nil
}

// Scanner reads IDs from text one at a time, the formats of ParseIDs:
// each entry is valid (ID) or not (Invalid).
type Scanner struct{ sc *modelid.Scanner }

// NewScanner reads IDs of kind k from r; string IDs of the other kind are
// invalid entries.
func NewScanner(r io.Reader, k Kind) *Scanner {
	return &Scanner{modelid.NewScanner(r, modelid.Kind(k))}
}

// Scan advances to the next entry, valid or not; false at the end or on a
// read error (Err).
func (s *Scanner) Scan() bool { return s.sc.Scan() }

// ID is the current entry's ID, when it is valid.
func (s *Scanner) ID() ID { return ID{s.sc.ID()} }

// Invalid describes the current entry when it is not a valid ID.
func (s *Scanner) Invalid() (InvalidID, bool) {
	inv, ok := s.sc.Invalid()
	return InvalidID(inv), ok
}

// Err is the read error that stopped Scan, if any; bad input is never an
// Err, it comes as invalid entries.
func (s *Scanner) Err() error { return s.sc.Err() }

// InvalidID is one rejected ID.
type InvalidID struct {
	// Index is the ID's position in Request.IDs, or a 1-based line number
	// when the ID came from text (InvalidIDsError.Line).
	Index  int    `json:"index"`
	Text   string `json:"text"`
	Reason string `json:"reason"`
}

// InvalidIDsError rejects a request; nothing was enqueued.
type InvalidIDsError struct {
	Invalid []InvalidID
	// More counts invalid IDs beyond those listed.
	More int
	// Line is true when Index values are line numbers.
	Line bool
}

func (e *InvalidIDsError) Error() string {
	in := modelid.InvalidIDsError{More: e.More, Line: e.Line}
	for _, i := range e.Invalid {
		in.Invalid = append(in.Invalid, modelid.InvalidID(i))
	}
	return in.Error()
}

// publicError gives an error about invalid IDs this package's type; other
// errors pass unchanged (errors.Is works with ErrNoIDs and ErrKeyConflict).
func publicError(err error) error {
	var inv *modelid.InvalidIDsError
	if !errors.As(err, &inv) {
		return err
	}
	e := &InvalidIDsError{More: inv.More, Line: inv.Line}
	for _, i := range inv.Invalid {
		e.Invalid = append(e.Invalid, InvalidID(i))
	}
	return e
}

// DefaultShards is the number of groups per kind and ID type.
const DefaultShards = enqueue.DefaultShards

// Config configures a Producer.
type Config struct {
	// BatchSize is the most IDs per API call; keep it equal to the
	// workers' --batch-size. Defaults to 100.
	BatchSize int
	// Shards spreads small jobs of one kind and ID type over this many
	// groups, so they drain faster; fewer shards make fuller calls.
	// Defaults to DefaultShards; at most 64.
	Shards int
	// MaxRetry, Timeout and Retention are given to every task. Default to
	// 12, 5m and 7 days.
	MaxRetry  int
	Timeout   time.Duration
	Retention time.Duration
	// TracerProvider starts Enqueue's span; nil uses OpenTelemetry's
	// global provider, a no-op unless the program set one. Each task
	// carries the W3C trace context of the span current when its request
	// came, so a worker's batch span links to it.
	TracerProvider trace.TracerProvider
}

// Producer enqueues deletions. It is safe for concurrent use.
type Producer struct{ p *enqueue.Producer }

// New returns a Producer on a go-redis client, which the caller keeps
// owning and closes.
func New(rdb redis.UniversalClient, cfg Config) (*Producer, error) {
	p, err := enqueue.New(rdb, enqueue.Config(cfg))
	if err != nil {
		return nil, err
	}
	return &Producer{p}, nil
}

// Request is one deletion job.
type Request struct {
	Kind Kind
	// IDs are the IDs to delete (Enqueue); a Stream takes them with Add.
	IDs []ID
	// ProcessAt delays the deletion; zero means now. It may be at most a
	// minute past and a year ahead (CheckWhen).
	ProcessAt time.Time
	// Key, when set, makes the request idempotent: enqueuing the same key
	// again adds nothing while its tasks are still known. The same key
	// with other IDs or kind is refused (ErrKeyConflict) before anything is
	// enqueued. Without one the request gets a new key (req-<time>-<random>,
	// in Receipt.Key) to follow and cancel it by, which makes nothing
	// idempotent.
	Key string
	// Digest is Digest.Sum of the request's IDs. Enqueue computes it; a
	// keyed Stream needs it from the caller's first pass over its input,
	// else the key is not checked against other requests.
	Digest string
	// Progress, when set, is called after each task with the number of IDs
	// enqueued so far.
	Progress func(done int)
	// OnBatch, when set, is called with each task enqueued, and the receipt
	// then lists no batches: a huge input's receipt stays small.
	OnBatch func(Batch)
	// Run and Rule name the rule run that planned these deletions; workers
	// check such batches against the services right before the call. A
	// request with Run is enqueued as ready batches only.
	Run  string
	Rule string
	// DeleteInUse deletes the IDs even where a service or a batch inference
	// task uses them: the explicit override of the workers' in-use check.
	// It is recorded with each outcome.
	DeleteInUse bool
	// RequestedBy names who asks; it is recorded with every outcome, event
	// and dead letter, with Key.
	RequestedBy string
}

func (r Request) internal(ids []modelid.ID) enqueue.Request {
	in := enqueue.Request{Kind: modelid.Kind(r.Kind), IDs: ids, ProcessAt: r.ProcessAt, Key: r.Key, Digest: r.Digest,
		Progress: r.Progress, Run: r.Run, Rule: r.Rule, DeleteInUse: r.DeleteInUse, RequestedBy: r.RequestedBy}
	if r.OnBatch != nil {
		in.OnBatch = func(b enqueue.Batch) { r.OnBatch(Batch(b)) }
	}
	return in
}

// Batch is one enqueued task.
type Batch struct {
	TaskID string    `json:"task_id"`
	IDType string    `json:"id_type"`
	IDs    int       `json:"ids"`
	Group  string    `json:"group,omitempty"` // set when it waits for aggregation
	At     time.Time `json:"process_at,omitzero"`
	// Existing is set when Key made this a repeat of an earlier request;
	// then the other fields describe the earlier task, and State is its
	// state in the queue (scheduled, pending, aggregating, active, retry,
	// archived or completed; empty when the queue no longer knows it).
	Existing bool   `json:"existing,omitempty"`
	State    string `json:"state,omitempty"`
}

// Receipt says what a request enqueued.
type Receipt struct {
	Kind Kind `json:"kind"`
	// Key is the request's key, given or generated (KeyGenerated): qfpurge
	// requests show KEY and GET /v1/requests/{key} follow it, qfpurge
	// requests cancel KEY and DELETE /v1/requests/{key} cancel it.
	Key          string `json:"key"`
	KeyGenerated bool   `json:"key_generated,omitempty"`
	IDs          int    `json:"ids"`
	IntIDs       int    `json:"int_ids"`
	StringIDs    int    `json:"string_ids"`
	Duplicates   int    `json:"duplicates"`
	// Batches are the tasks, unless Request.OnBatch took them.
	Batches []Batch `json:"batches"`
	// Tasks counts the tasks (equal to len(Batches) without OnBatch).
	Tasks int `json:"tasks"`
}

func receipt(rc enqueue.Receipt) Receipt {
	out := Receipt{Kind: Kind(rc.Kind), Key: rc.Key, KeyGenerated: rc.KeyGenerated, IDs: rc.IDs, IntIDs: rc.IntIDs, StringIDs: rc.StringIDs,
		Duplicates: rc.Duplicates, Tasks: rc.Tasks}
	for _, b := range rc.Batches {
		out.Batches = append(out.Batches, Batch(b))
	}
	return out
}

// Enqueue validates r and enqueues its IDs: all of them, or, when any is
// invalid, none (an *InvalidIDsError).
func (p *Producer) Enqueue(ctx context.Context, r Request) (Receipt, error) {
	rc, err := p.p.Enqueue(ctx, r.internal(toInternal(r.IDs)))
	return receipt(rc), publicError(err)
}

// Validate checks a request without enqueuing anything: its kind, and
// every ID against the ID rule and the kind.
func Validate(r Request) error {
	return publicError(enqueue.Validate(r.internal(toInternal(r.IDs))))
}

// DedupeWindow is how many distinct IDs of each type a Stream remembers to
// drop repeats.
const DedupeWindow = enqueue.DedupeWindow

// Stream enqueues one request's IDs as they come, a batch at a time. It
// cannot take back what it enqueued: to keep a request all-or-nothing,
// check every ID first (Scanner, Validate). A Stream is not safe for
// concurrent use.
type Stream struct{ s *enqueue.Stream }

// Stream starts a streamed request; r.IDs must be empty.
func (p *Producer) Stream(r Request) (*Stream, error) {
	if len(r.IDs) > 0 {
		return nil, errors.New("producer: a Stream takes its IDs with Add, not in Request.IDs")
	}
	s, err := p.p.Stream(r.internal(nil))
	if err != nil {
		return nil, err
	}
	return &Stream{s}, nil
}

// Add takes one ID, enqueuing a batch when one is full.
func (s *Stream) Add(ctx context.Context, id ID) error { return publicError(s.s.Add(ctx, id.id)) }

// Close enqueues what is left and returns the receipt.
func (s *Stream) Close(ctx context.Context) (Receipt, error) {
	rc, err := s.s.Close(ctx)
	return receipt(rc), publicError(err)
}

// Receipt is what was enqueued so far.
func (s *Stream) Receipt() Receipt { return receipt(s.s.Receipt()) }

// ErrNoIDs rejects an empty request.
var ErrNoIDs = enqueue.ErrNoIDs

// ErrKeyConflict: the request's Key was used before for other IDs or
// another kind; nothing was enqueued.
var ErrKeyConflict = enqueue.ErrKeyConflict

// Digest sums a streamed request's IDs, in any order and with repeats, for
// Request.Digest. The zero Digest is ready to use.
type Digest struct{ d enqueue.Digest }

// Add counts id.
func (d *Digest) Add(id ID) { d.d.Add(id.id) }

// Sum is the digest of the IDs added, for r's kind.
func (d *Digest) Sum(r Request) string { return d.d.Sum(r.internal(nil)) }

// CheckWhen reports why a time cannot be a deletion's (more than a minute
// past, or more than a year ahead, of now); every producer shares this
// horizon.
func CheckWhen(at, now time.Time) error { return enqueue.CheckWhen(at, now) }

// CheckDelay is CheckWhen for a delay.
func CheckDelay(d time.Duration) error { return enqueue.CheckDelay(d) }
