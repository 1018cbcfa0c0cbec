package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Redis keys of the run records.
const (
	// RunsStream has one event per preview or run reaching an end
	// (previewed, blocked, failed, empty, enqueued), for other systems to
	// follow, capped like qfpurge:events.
	RunsStream = "qfpurge:runs"
	// runsIndex orders the kept runs: member run ID, score creation time
	// (unix ms).
	runsIndex = "qfpurge:runs:index"
	// runPrefix + ID is the run's record (JSON); + ID + ":items" its planned
	// items (a list, one JSON item each). Both expire with the TTL.
	runPrefix = "qfpurge:run:"
	// boundPrefix + status + ":" + rule orders a rule's previews or blocked
	// runs (member run ID, score creation time), so only the newest are kept.
	boundPrefix = "qfpurge:runs:"
)

// Mode says whether a run deletes.
type Mode string

// The modes.
const (
	ModePreview Mode = "preview" // plan and record, delete nothing
	ModeRun     Mode = "run"     // plan, record and enqueue the deletions
)

// Status is where a run is.
type Status string

// The statuses. Previewed, blocked, empty and enqueued are ends; failed is
// an end unless the run is retried (scheduled and API runs are).
const (
	StatusQueued    Status = "queued"    // waiting for a worker
	StatusPlanning  Status = "planning"  // reading the inventory
	StatusPreviewed Status = "previewed" // a preview's end: nothing enqueued
	StatusBlocked   Status = "blocked"   // over its limit: nothing enqueued
	StatusFailed    Status = "failed"    // could not plan: nothing enqueued
	StatusEmpty     Status = "empty"     // planned, nothing to delete
	StatusEnqueuing Status = "enqueuing" // plan recorded, deletions being enqueued
	StatusEnqueued  Status = "enqueued"  // deletions handed to the workers
)

// settled reports a status a redelivered run must not redo.
func (s Status) settled() bool {
	return s == StatusPreviewed || s == StatusBlocked || s == StatusEmpty || s == StatusEnqueued
}

// Record is a run as it is kept: who asked, the rule as it was, the plan's
// totals and verdict, and where the run is. Its items are kept apart
// (Store.Items).
type Record struct {
	ID            string       `json:"id"`
	Rule          string       `json:"rule"`
	Kind          modelid.Kind `json:"kind"`
	Mode          Mode         `json:"mode"`
	Trigger       string       `json:"trigger"` // schedule, cli or api
	By            string       `json:"by,omitempty"`
	Tick          time.Time    `json:"tick,omitzero"`
	OverrideLimit bool         `json:"override_limit,omitempty"`
	Names         []string     `json:"names,omitempty"` // the name scope of the token that asked
	Status        Status       `json:"status"`
	Created       time.Time    `json:"created"`
	Updated       time.Time    `json:"updated"`
	Inventory     time.Time    `json:"inventory_taken,omitzero"`
	Protection    bool         `json:"protection"`
	Limit         Limit        `json:"limit"`
	Blocked       string       `json:"blocked,omitempty"`
	Error         string       `json:"error,omitempty"`
	Totals        Totals       `json:"totals"`
	Batches       int          `json:"batches,omitempty"`
	Attempts      int          `json:"attempts"`
	// Spec is the rule the run applied.
	Spec Rule `json:"spec"`
}

// ErrNoRun: no record of that run is kept (never made, or expired).
var ErrNoRun = errors.New("no such run")

// StoreConfig configures a Store.
type StoreConfig struct {
	// TTL is how long a run's record and items are kept; keep it at least
	// the ledger's, so an outcome's run can be read. Defaults to 30 days.
	TTL time.Duration
	// EventsMaxLen caps RunsStream approximately; negative for none.
	// Defaults to 10,000.
	EventsMaxLen int64
	// Previews and blocked runs delete nothing, so fewer are kept, for
	// less long: the newest KeepPreviews previews and KeepBlocked blocked
	// runs of each rule, each for at most ShortTTL. Defaults 20, 20, 24h.
	KeepPreviews, KeepBlocked int
	ShortTTL                  time.Duration
}

// Store keeps run records in Redis.
type Store struct {
	rdb redis.UniversalClient
	cfg StoreConfig
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, cfg StoreConfig) *Store {
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * 24 * time.Hour
	}
	if cfg.EventsMaxLen == 0 {
		cfg.EventsMaxLen = 10_000
	}
	if cfg.KeepPreviews <= 0 {
		cfg.KeepPreviews = 20
	}
	if cfg.KeepBlocked <= 0 {
		cfg.KeepBlocked = 20
	}
	if cfg.ShortTTL <= 0 {
		cfg.ShortTTL = 24 * time.Hour
	}
	cfg.ShortTTL = min(cfg.ShortTTL, cfg.TTL)
	return &Store{rdb: rdb, cfg: cfg}
}

func recordKey(id string) string { return runPrefix + id }
func itemsKey(id string) string  { return runPrefix + id + ":items" }

// create writes a new record unless one exists; it reports whether it did.
func (s *Store) create(ctx context.Context, rec *Record) (bool, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	ok, err := s.rdb.SetNX(ctx, recordKey(rec.ID), b, s.cfg.TTL).Result()
	if err != nil || !ok {
		return ok, err
	}
	return true, s.rdb.ZAdd(ctx, runsIndex, redis.Z{Score: float64(rec.Created.UnixMilli()), Member: rec.ID}).Err()
}

// put writes the record.
func (s *Store) put(ctx context.Context, rec *Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	keep := s.kept(rec.Status)
	ttl := s.cfg.TTL
	if keep > 0 {
		ttl = s.cfg.ShortTTL
	}
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, recordKey(rec.ID), b, ttl)
	pipe.ZAdd(ctx, runsIndex, redis.Z{Score: float64(rec.Created.UnixMilli()), Member: rec.ID})
	if keep > 0 {
		pipe.Expire(ctx, itemsKey(rec.ID), ttl)
		pipe.ZAdd(ctx, boundKey(rec), redis.Z{Score: float64(rec.Created.UnixMilli()), Member: rec.ID})
		pipe.Expire(ctx, boundKey(rec), ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record run %s: %w", rec.ID, err)
	}
	if keep > 0 {
		return s.trim(ctx, boundKey(rec), keep)
	}
	return nil
}

// kept is how many runs of a rule in status s are kept; 0: no bound.
func (s *Store) kept(st Status) int {
	switch st {
	case StatusPreviewed:
		return s.cfg.KeepPreviews
	case StatusBlocked:
		return s.cfg.KeepBlocked
	}
	return 0
}

func boundKey(rec *Record) string { return boundPrefix + string(rec.Status) + ":" + rec.Rule }

// trim forgets all but the newest keep runs in the bound set key.
func (s *Store) trim(ctx context.Context, key string, keep int) error {
	old, err := s.rdb.ZRange(ctx, key, 0, int64(-keep-1)).Result()
	if err != nil || len(old) == 0 {
		return err
	}
	members := make([]any, len(old))
	pipe := s.rdb.Pipeline()
	for i, id := range old {
		members[i] = id
		pipe.Del(ctx, recordKey(id), itemsKey(id))
	}
	pipe.ZRem(ctx, key, members...)
	pipe.ZRem(ctx, runsIndex, members...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("forget old runs: %w", err)
	}
	return nil
}

// putItems replaces the run's items.
func (s *Store) putItems(ctx context.Context, id string, items []Item) error {
	key := itemsKey(id)
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, key)
	chunk := make([]any, 0, 1000)
	flush := func() {
		if len(chunk) > 0 {
			pipe.RPush(ctx, key, chunk...)
			chunk = chunk[:0:0]
		}
	}
	for i, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			return err
		}
		chunk = append(chunk, b)
		if len(chunk) == cap(chunk) {
			flush()
		}
		// A plan of a large account has 100,000s of items: send them
		// 10,000 at a time rather than encode them all at once.
		if (i+1)%10_000 == 0 {
			pipe.Expire(ctx, key, s.cfg.TTL)
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("record the items of run %s: %w", id, err)
			}
		}
	}
	flush()
	pipe.Expire(ctx, key, s.cfg.TTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record the items of run %s: %w", id, err)
	}
	return nil
}

// Get returns a run's record, or ErrNoRun.
func (s *Store) Get(ctx context.Context, id string) (Record, error) {
	var rec Record
	b, err := s.rdb.Get(ctx, recordKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return rec, fmt.Errorf("%w: %s", ErrNoRun, id)
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("run %s: %w", id, err)
	}
	return rec, nil
}

// Items returns up to limit of a run's items from offset (limit <= 0: all),
// and how many it has.
func (s *Store) Items(ctx context.Context, id string, offset, limit int) ([]Item, int, error) {
	key := itemsKey(id)
	n, err := s.rdb.LLen(ctx, key).Result()
	if err != nil {
		return nil, 0, err
	}
	stop := int64(-1)
	if limit > 0 {
		stop = int64(offset + limit - 1)
	}
	raw, err := s.rdb.LRange(ctx, key, int64(offset), stop).Result()
	if err != nil {
		return nil, 0, err
	}
	out := make([]Item, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			return nil, 0, fmt.Errorf("run %s item %d: %w", id, offset+i, err)
		}
	}
	return out, int(n), nil
}

// List returns up to limit runs, newest first, created before before (zero:
// any). Runs whose record expired are dropped from the index.
func (s *Store) List(ctx context.Context, limit int, before time.Time) ([]Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	upTo := "+inf"
	if !before.IsZero() {
		upTo = "(" + strconv.FormatInt(before.UnixMilli(), 10)
	}
	ids, err := s.rdb.ZRevRangeByScore(ctx, runsIndex, &redis.ZRangeBy{Max: upTo, Min: "-inf", Count: int64(limit)}).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = recordKey(id)
	}
	// One GET each: a cluster spreads the records over slots.
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var out []Record
	var gone []any
	for i, c := range cmds {
		b, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			gone = append(gone, ids[i])
			continue
		}
		var rec Record
		if err != nil || json.Unmarshal(b, &rec) != nil {
			continue
		}
		out = append(out, rec)
	}
	if len(gone) > 0 {
		_ = s.rdb.ZRem(ctx, runsIndex, gone...).Err()
	}
	return out, nil
}

// event appends the run's end to RunsStream.
func (s *Store) event(ctx context.Context, rec *Record) error {
	a := &redis.XAddArgs{Stream: RunsStream, Values: map[string]any{
		"run": rec.ID, "rule": rec.Rule, "kind": string(rec.Kind), "mode": string(rec.Mode), "trigger": rec.Trigger,
		"status": string(rec.Status), "considered": rec.Totals.Considered, "delete": rec.Totals.Delete,
		"keep": rec.Totals.Keep, "protect": rec.Totals.Protect, "blocked": rec.Blocked, "error": rec.Error,
		"override_limit": strconv.FormatBool(rec.OverrideLimit), "time": rec.Updated.UTC().Format(time.RFC3339),
	}}
	if s.cfg.EventsMaxLen > 0 {
		a.MaxLen, a.Approx = s.cfg.EventsMaxLen, true
	}
	return s.rdb.XAdd(ctx, a).Err()
}

// Outcome is what the ledger says became of a planned deletion.
type Outcome struct {
	State   ledger.State `json:"state"`
	Run     string       `json:"run,omitempty"`
	TaskID  string       `json:"task_id,omitempty"`
	LogID   string       `json:"log_id,omitempty"`
	Message string       `json:"message,omitempty"`
	At      time.Time    `json:"at,omitzero"`
}

// ItemOutcome is a planned item with its outcome, for deletions that have
// one.
type ItemOutcome struct {
	Item
	Outcome *Outcome `json:"outcome,omitempty"`
}

// Outcomes joins items with the ledger's records of the deletions among
// them, in one round trip.
func Outcomes(ctx context.Context, l *ledger.Ledger, k modelid.Kind, items []Item) ([]ItemOutcome, error) {
	out := make([]ItemOutcome, len(items))
	var ids []modelid.ID
	var at []int
	for i, it := range items {
		out[i].Item = it
		if it.Action == ActionDelete {
			ids = append(ids, modelid.StringID(it.ID))
			at = append(at, i)
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	recs, err := l.LookupMany(ctx, k, ids)
	if err != nil {
		return nil, err
	}
	for j, r := range recs {
		if r.State != "" {
			out[at[j]].Outcome = &Outcome{State: r.State, Run: r.Run, TaskID: r.TaskID, LogID: r.LogID, Message: r.Message, At: r.At}
		}
	}
	return out, nil
}
