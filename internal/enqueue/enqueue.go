// Package enqueue hands Qianfan model deletions to qfpurge workers: it
// validates a request, splits its IDs by type (Qianfan rejects mixed lists),
// collapses duplicates, and enqueues Asynq tasks. A request holding a full
// batch or more is cut into ready batches that skip Asynq's group
// aggregation; the rest goes into a group keyed by kind, ID type and shard,
// where the worker merges it with other small jobs. Invalid IDs reject the
// whole request before anything is enqueued. The public package producer,
// cmd/enqueue, dead-letter requeue, scheduled purges and the HTTP API are
// built on it.
package enqueue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/internal/tracing"
)

// DefaultShards is the number of groups per kind and ID type.
const DefaultShards = 4

// Config configures a Producer.
type Config struct {
	// BatchSize is the most IDs per API call; keep it equal to the worker's
	// --batch-size. Defaults to 100.
	BatchSize int
	// Shards spreads small jobs of one kind and ID type over this many
	// Asynq groups. Asynq forms at most one batch per group per aggregation
	// tick (the worker's --batch-wait), taking up to the worker's
	// --group-max-size jobs, so small jobs drain at up to about
	// Shards × group-max-size / batch-wait per kind and ID type. Each group
	// also ends a burst with one part-filled batch, so fewer shards mean
	// fuller calls. Defaults to 4; at most 64.
	Shards int
	// MaxRetry, Timeout and Retention are given to every task; see
	// tasks.Options. Defaults to 12, 5m and 7 days.
	MaxRetry  int
	Timeout   time.Duration
	Retention time.Duration
	// TracerProvider starts Enqueue's span; nil uses OpenTelemetry's
	// global provider, a no-op unless the program set one. Each task
	// carries the W3C trace context of the span current when its request
	// came (Enqueue's own, or the caller's for a Stream), so a worker's
	// batch span links to it; without a span nothing is carried.
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = tasks.DefaultBatchSize
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	return c
}

func (c Config) validate() error {
	if c.BatchSize < 1 {
		return fmt.Errorf("producer: BatchSize %d must be at least 1", c.BatchSize)
	}
	if c.Shards < 1 || c.Shards > tasks.MaxShards {
		return fmt.Errorf("producer: Shards %d must be between 1 and %d", c.Shards, tasks.MaxShards)
	}
	return nil
}

// Producer enqueues deletions. It is safe for concurrent use.
type Producer struct {
	rdb  redis.UniversalClient
	insp *asynq.Inspector
	cfg  Config
	opt  tasks.Options
	tr   trace.Tracer
	// queueListed is set once the queue's name is in asynqlayout.Queues.
	queueListed atomic.Bool
}

// New returns a Producer on a go-redis client, which the caller keeps
// owning and closes.
func New(rdb redis.UniversalClient, cfg Config) (*Producer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Producer{
		tr:   tp.Tracer(tracing.Scope),
		rdb:  rdb,
		insp: asynq.NewInspectorFromRedisClient(rdb),
		cfg:  cfg,
		opt:  tasks.Options{MaxRetry: cfg.MaxRetry, Timeout: cfg.Timeout, Retention: cfg.Retention}.WithDefaults(),
	}, nil
}

// Request is one deletion job.
type Request struct {
	Kind modelid.Kind
	// IDs are the IDs to delete (Enqueue); a Stream takes them with Add.
	IDs []modelid.ID
	// ProcessAt delays the deletion; zero means now.
	ProcessAt time.Time
	// Key, when set, makes the request idempotent: enqueuing the same key
	// again adds nothing while its tasks are still known to Asynq. The
	// same key with other IDs or kind is refused (ErrKeyConflict)
	// before anything is enqueued. Without one the request gets a new key
	// (NewKey, returned in Receipt.Key) to follow and cancel it by; that
	// key makes nothing idempotent.
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
	// Run and Rule name the rule run that planned these deletions (see
	// package policy). Workers check such batches against the services
	// right before the call, and the ledger records Run with each outcome.
	// A request with Run is enqueued as ready batches only: in a group it
	// would be merged with other jobs and lose its run.
	Run  string
	Rule string
	// DeleteInUse deletes the IDs even where a service or a batch inference
	// task uses them: the explicit override of the workers' in-use check
	// (a rule with protect_in_use: false, enqueue --delete-in-use, the
	// API's delete_in_use). It is recorded with each outcome.
	DeleteInUse bool
	// RequestedBy names who asks (an API token's name, enqueue --as, a
	// schedule entry); it is recorded with every outcome, event and dead
	// letter, with Key.
	RequestedBy string
	// NameScope, when set, are globs (path.Match) a model's name must match
	// (a version's: its model's): workers check each ID against them right
	// before its call and record the others refused, never sending them.
	// An API token's names set it.
	NameScope []string

	// traceparent and tracestate are the request's trace context, taken
	// from the context of its first ID.
	traceparent, tracestate string
	// generated: Key was made for the request, not given.
	generated bool
}

// Batch is one enqueued task.
type Batch struct {
	TaskID string    `json:"task_id"`
	IDType string    `json:"id_type"`
	IDs    int       `json:"ids"`
	Group  string    `json:"group,omitempty"` // set when it waits for aggregation
	At     time.Time `json:"process_at,omitzero"`
	// Existing is set when Key made this a repeat of an earlier request;
	// then the other fields describe the earlier task as Asynq holds it
	// (its IDs, group and time), and State is its Asynq state (scheduled,
	// pending, aggregating, active, retry, archived or completed; empty
	// when Asynq no longer knows it).
	Existing bool   `json:"existing,omitempty"`
	State    string `json:"state,omitempty"`
}

// Receipt says what a request enqueued.
type Receipt struct {
	Kind modelid.Kind `json:"kind"`
	// Key is the request's key, given or generated (KeyGenerated): it
	// follows the request (ReadRequest) and cancels it.
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

// ErrNoIDs rejects an empty request.
var ErrNoIDs = errors.New("no IDs to delete")

// Validate checks a request without enqueuing anything: its kind, and
// every ID against modelid's rule and the kind.
func Validate(r Request) error {
	if _, err := modelid.ParseKind(string(r.Kind)); err != nil {
		return err
	}
	if len(r.IDs) == 0 {
		return ErrNoIDs
	}
	var bad modelid.InvalidIDsError
	for i, id := range r.IDs {
		if err := id.ValidateFor(r.Kind); err != nil {
			bad.Add(modelid.InvalidID{Index: i, Text: id.String(), Reason: err.Error()})
		}
	}
	if bad.Count() > 0 {
		return &bad
	}
	return nil
}

// Enqueue validates r and enqueues it: nothing when any ID is invalid. On a
// Redis failure part-way, the receipt lists what was enqueued before it;
// enqueuing the rest again is safe because workers skip IDs they already
// deleted.
func (p *Producer) Enqueue(ctx context.Context, r Request) (rc Receipt, err error) {
	ctx, span := p.tr.Start(ctx, "qfpurge.enqueue", trace.WithSpanKind(trace.SpanKindProducer))
	defer func() { endSpan(span, r, rc, err) }()
	if err := Validate(r); err != nil {
		return Receipt{}, err
	}
	ids := modelid.Dedupe(r.IDs)
	if r.Key != "" {
		var d Digest
		for _, id := range ids {
			d.Add(id)
		}
		r.Digest = d.Sum(r)
	}
	s, err := p.stream(r, false)
	if err != nil {
		return Receipt{}, err
	}
	s.rc.Duplicates = len(r.IDs) - len(ids)
	ints, strs := modelid.SplitByType(ids)
	for _, list := range [][]modelid.ID{ints, strs} {
		for _, id := range list {
			if err := s.Add(ctx, id); err != nil {
				return s.rc, err
			}
		}
	}
	return s.Close(ctx)
}

// DedupeWindow is how many distinct IDs of each type a Stream remembers to
// drop repeats: an input of up to this many distinct int IDs (and as many
// string IDs) is deduplicated exactly; a repeat further apart is enqueued
// again, and the worker's ledger skips an ID once it is recorded deleted.
const DedupeWindow = 1 << 20

// Stream enqueues one request's IDs as they come: full batches are
// written as they fill, many to a Redis round trip, the rest at Close. It
// holds one batch per ID type, the batches of one round trip and the dedupe
// window, not the input. A Stream is not safe for concurrent use.
//
// A Stream cannot take back what it enqueued: to keep a request
// all-or-nothing, check every ID first (modelid.Scanner, Validate), as
// cmd/enqueue does in a first pass over its input.
type Stream struct {
	p       *Producer
	r       Request
	delayed bool
	pending [2][]modelid.ID // by type: int, string
	n       [2]int          // batches enqueued, by type: the key's numbering
	seen    *window
	queued  []write // prepared, not yet sent
	err     error   // the first failed write; the Stream takes nothing more
	rc      Receipt
	done    int
	claimed bool // the key's digest is recorded or checked
	traced  bool // the request's trace context is taken
	noted   bool // the request is recorded for ReadRequest
}

// Stream starts a streamed request; r.IDs must be empty.
func (p *Producer) Stream(r Request) (*Stream, error) {
	if _, err := modelid.ParseKind(string(r.Kind)); err != nil {
		return nil, err
	}
	if len(r.IDs) > 0 {
		return nil, errors.New("producer: a Stream takes its IDs with Add, not in Request.IDs")
	}
	return p.stream(r, true)
}

func (p *Producer) stream(r Request, dedupe bool) (*Stream, error) {
	now := time.Now()
	// A time long past would run at once without a word: refuse it. (The
	// CLI and the API also check the year ahead, against their clocks.)
	if !r.ProcessAt.IsZero() && now.Sub(r.ProcessAt) > MaxBehind {
		return nil, fmt.Errorf("process at: %w", CheckWhen(r.ProcessAt, now))
	}
	// The fleet's grace period: a request may ask for a later time, never
	// an earlier one.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	grace, err := Grace(ctx, p.rdb)
	cancel()
	if err != nil {
		return nil, err
	}
	if grace > 0 && r.ProcessAt.Before(now.Add(grace)) {
		r.ProcessAt = now.Add(grace)
	}
	if r.Key == "" {
		r.Key, r.generated = NewKey(now), true
	}
	s := &Stream{p: p, r: r, delayed: r.ProcessAt.After(now)}
	s.rc.Kind, s.rc.Key, s.rc.KeyGenerated = r.Kind, r.Key, r.generated
	if dedupe {
		s.seen = newWindow(DedupeWindow)
	}
	return s, nil
}

func typeIndex(id modelid.ID) int {
	if id.Type() == modelid.IDString {
		return 1
	}
	return 0
}

// Add takes one ID; a full batch is written with the next round trip. An
// invalid ID is refused (and nothing else happens); a repeat within the
// dedupe window is counted and dropped.
func (s *Stream) Add(ctx context.Context, id modelid.ID) error {
	if s.err != nil {
		return s.err
	}
	if !s.traced {
		s.traced = true
		s.r.traceparent, s.r.tracestate = tracing.Inject(ctx)
	}
	if err := id.ValidateFor(s.r.Kind); err != nil {
		return &modelid.InvalidIDsError{Invalid: []modelid.InvalidID{{Index: s.rc.IDs + s.rc.Duplicates, Text: id.String(), Reason: err.Error()}}}
	}
	if s.seen != nil && !s.seen.add(id) {
		s.rc.Duplicates++
		return nil
	}
	s.rc.IDs++
	t := typeIndex(id)
	if t == 0 {
		s.rc.IntIDs++
	} else {
		s.rc.StringIDs++
	}
	s.pending[t] = append(s.pending[t], id)
	if len(s.pending[t]) == s.p.cfg.BatchSize {
		s.cut(t)
		if len(s.queued) >= pipelineDepth {
			return s.send(ctx)
		}
	}
	return nil
}

// Close enqueues what is left (each ID type's last, part-filled batch) and
// returns the receipt.
func (s *Stream) Close(ctx context.Context) (Receipt, error) {
	if s.err != nil {
		return s.rc, s.err
	}
	for t := range s.pending {
		if len(s.pending[t]) > 0 {
			s.cut(t)
		}
	}
	if err := s.send(ctx); err != nil {
		return s.rc, err
	}
	if s.rc.IDs == 0 && s.rc.Duplicates == 0 {
		return s.rc, ErrNoIDs
	}
	return s.rc, nil
}

// Receipt is what was enqueued so far.
func (s *Stream) Receipt() Receipt { return s.rc }

// cut turns the pending IDs of type t into a task for the next round trip.
func (s *Stream) cut(t int) {
	ids := s.pending[t]
	// A group merges jobs of many requests: one that overrides the in-use
	// check or names a rule run keeps its batches to itself.
	ready := len(ids) == s.p.cfg.BatchSize || s.delayed || s.r.Run != "" || s.r.DeleteInUse
	s.queued = append(s.queued, s.p.prepare(s.r, ids, ready, s.n[t], time.Now()))
	s.n[t]++
	s.pending[t] = make([]modelid.ID, 0, s.p.cfg.BatchSize)
}

// send writes the queued tasks and adds what Redis took to the receipt, in
// order; the first failure ends the Stream.
func (s *Stream) send(ctx context.Context) error {
	ws := s.queued
	s.queued = s.queued[:0]
	if len(ws) == 0 {
		return nil
	}
	if !s.claimed {
		if err := claimKey(ctx, s.p.rdb, s.r); err != nil {
			s.err = err
			return err
		}
		s.claimed = true
	}
	s.p.send(ctx, ws)
	var took []*write
	for i := range ws {
		w := &ws[i]
		b, err := s.p.outcome(w)
		if err != nil {
			if s.err == nil {
				s.err = fmt.Errorf("enqueue batch %d of the %s IDs: %w", w.n+1, w.b.IDType, err)
			}
			continue
		}
		took = append(took, w)
		s.rc.Tasks++
		if s.r.OnBatch != nil {
			s.r.OnBatch(b)
		} else {
			s.rc.Batches = append(s.rc.Batches, b)
		}
		s.done += w.b.IDs
		if s.r.Progress != nil {
			s.r.Progress(s.done)
		}
	}
	if err := s.record(ctx, took); err != nil && s.err == nil {
		s.err = err
	}
	s.p.cutGroups(ctx, ws)
	clear(ws)
	return s.err
}

// outcome reads a sent write's answer: the task as enqueued, or the earlier
// task its key met.
func (p *Producer) outcome(w *write) (Batch, error) {
	n, err := w.cmd.Int64()
	switch {
	case err != nil:
		return w.b, err
	case n == 0 && w.keyed:
		return p.existing(w.b, w.b.TaskID), nil
	case n == 0:
		return w.b, asynq.ErrTaskIDConflict
	}
	return w.b, nil
}

// taskID names a keyed request's n-th batch of one ID type, so the same
// request enqueued again meets its own tasks whatever order its IDs come in.
func taskID(key string, t modelid.IDType, n int) string {
	return key + "/" + string(t) + "/" + strconv.Itoa(n)
}

// existing describes the earlier task a repeated key met, as Asynq holds
// it: its time and group are the first request's, not this one's.
func (p *Producer) existing(b Batch, id string) Batch {
	b.TaskID, b.Existing, b.At, b.Group = id, true, time.Time{}, ""
	info, err := p.insp.GetTaskInfo(asynqlayout.Queue, id)
	if err != nil {
		return b
	}
	b.State, b.Group = info.State.String(), info.Group
	if info.State == asynq.TaskStateScheduled {
		b.At = info.NextProcessAt.UTC()
	}
	if pl, err := tasks.DecodePayload(info.Payload); err == nil {
		b.IDs = len(pl.IDs)
	}
	return b
}

// endSpan ends Enqueue's span with what the request enqueued. Only counts,
// the kind, the key and the requester's name: never IDs.
func endSpan(span trace.Span, r Request, rc Receipt, err error) {
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("qfpurge.kind", string(r.Kind)),
			attribute.Int("qfpurge.ids", rc.IDs),
			attribute.Int("qfpurge.duplicates", rc.Duplicates),
			attribute.Int("qfpurge.tasks", rc.Tasks),
		)
		if k := cmp.Or(rc.Key, r.Key); k != "" {
			span.SetAttributes(attribute.String("qfpurge.request.key", k))
		}
		if r.RequestedBy != "" {
			span.SetAttributes(attribute.String("qfpurge.requested_by", r.RequestedBy))
		}
		if r.Run != "" {
			span.SetAttributes(attribute.String("qfpurge.run", r.Run))
		}
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}
