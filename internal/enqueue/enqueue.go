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
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/tasks"
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
	c   *asynq.Client
	cfg Config
	opt tasks.Options
}

// New returns a Producer on a go-redis client, which the caller keeps
// owning and closes.
func New(rdb redis.UniversalClient, cfg Config) (*Producer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Producer{
		c:   asynq.NewClientFromRedisClient(rdb),
		cfg: cfg,
		opt: tasks.Options{MaxRetry: cfg.MaxRetry, Timeout: cfg.Timeout, Retention: cfg.Retention},
	}, nil
}

// Request is one deletion job.
type Request struct {
	Kind modelid.Kind
	IDs  []modelid.ID
	// ProcessAt delays the deletion; zero means now.
	ProcessAt time.Time
	// Key, when set, makes the request idempotent: enqueuing the same key
	// again adds nothing while its tasks are still known to Asynq.
	Key string
	// Progress, when set, is called after each task with the number of IDs
	// enqueued so far.
	Progress func(done int)
	// Run and Rule name the rule run that planned these deletions (see
	// package policy). Workers check such batches against the services
	// right before the call, and the ledger records Run with each outcome.
	// A request with Run is enqueued as ready batches only: in a group it
	// would be merged with other jobs and lose its run.
	Run  string
	Rule string
}

// Batch is one enqueued task.
type Batch struct {
	TaskID string    `json:"task_id"`
	IDType string    `json:"id_type"`
	IDs    int       `json:"ids"`
	Group  string    `json:"group,omitempty"` // set when it waits for aggregation
	At     time.Time `json:"process_at,omitzero"`
	// Existing is set when Key made this a repeat of an earlier request.
	Existing bool `json:"existing,omitempty"`
}

// Receipt says what a request enqueued.
type Receipt struct {
	Kind       modelid.Kind `json:"kind"`
	IDs        int          `json:"ids"`
	IntIDs     int          `json:"int_ids"`
	StringIDs  int          `json:"string_ids"`
	Duplicates int          `json:"duplicates"`
	Batches    []Batch      `json:"batches"`
}

// ErrNoIDs rejects an empty request.
var ErrNoIDs = errors.New("no IDs to delete")

// Validate checks a request without enqueuing anything.
func Validate(r Request) error {
	if _, err := modelid.ParseKind(string(r.Kind)); err != nil {
		return err
	}
	if len(r.IDs) == 0 {
		return ErrNoIDs
	}
	var bad []modelid.InvalidID
	for i, id := range r.IDs {
		if err := id.Validate(); err != nil {
			bad = append(bad, modelid.InvalidID{Index: i, Text: id.String(), Reason: err.Error()})
		}
	}
	if len(bad) > 0 {
		return &modelid.InvalidIDsError{Invalid: bad}
	}
	return nil
}

// Enqueue validates r and enqueues it. On a Redis failure part-way, the
// receipt lists what was enqueued before it; enqueuing the rest again is
// safe because workers skip IDs they already deleted.
func (p *Producer) Enqueue(ctx context.Context, r Request) (Receipt, error) {
	if err := Validate(r); err != nil {
		return Receipt{}, err
	}
	ids := modelid.Dedupe(r.IDs)
	ints, strs := modelid.SplitByType(ids)
	rc := Receipt{Kind: r.Kind, IDs: len(ids), IntIDs: len(ints), StringIDs: len(strs), Duplicates: len(r.IDs) - len(ids)}
	delayed := r.ProcessAt.After(time.Now())
	done := 0
	for _, list := range [][]modelid.ID{ints, strs} {
		chunks := modelid.Chunk(list, p.cfg.BatchSize)
		for i, c := range chunks {
			b, err := p.enqueueOne(ctx, r, c, len(c) == p.cfg.BatchSize || delayed || r.Run != "", len(rc.Batches))
			if err != nil {
				return rc, fmt.Errorf("enqueue batch %d of %d (%s IDs): %w", i+1, len(chunks), c[0].Type(), err)
			}
			rc.Batches = append(rc.Batches, b)
			done += len(c)
			if r.Progress != nil {
				r.Progress(done)
			}
		}
	}
	return rc, nil
}

func (p *Producer) enqueueOne(ctx context.Context, r Request, ids []modelid.ID, ready bool, n int) (Batch, error) {
	b := Batch{IDType: string(ids[0].Type()), IDs: len(ids)}
	pl := tasks.Payload{Kind: r.Kind, IDs: ids, Run: r.Run, Rule: r.Rule}
	var extra []asynq.Option
	if r.Key != "" {
		extra = append(extra, asynq.TaskID(r.Key+"/"+strconv.Itoa(n)))
	}
	var (
		t   *asynq.Task
		err error
	)
	if ready {
		if !r.ProcessAt.IsZero() {
			extra = append(extra, asynq.ProcessAt(r.ProcessAt))
			b.At = r.ProcessAt.UTC()
		}
		t, err = tasks.NewBatchTask(pl, p.opt, extra...)
	} else {
		b.Group = tasks.GroupName(r.Kind, ids[0].Type(), tasks.Shard(ids[0], p.cfg.Shards))
		t, err = tasks.NewDeleteTask(pl, b.Group, p.opt)
	}
	if err != nil {
		return b, err
	}
	info, err := p.c.EnqueueContext(ctx, t, extra...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		b.TaskID, b.Existing = r.Key+"/"+strconv.Itoa(n), true
		return b, nil
	}
	if err != nil {
		return b, err
	}
	b.TaskID = info.ID
	return b, nil
}
