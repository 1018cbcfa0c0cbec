// Package ledger is qfpurge's record of outcomes in Redis and the sole owner
// of its keys: each ID's state (so a repeated call's "param invalid" is not
// mistaken for a bad ID, and so anyone can ask what became of an ID), the
// outcome event stream, and the write-ahead records of calls under way.
// Dead IDs also get an entry in package deadletter's stream, written in the
// same round trip as their state.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// EventStream carries one event per outcome for other systems to follow.
const EventStream = "qfpurge:events"

// keyID prefixes each ID's hash: qfpurge:id:<kind>:<id type>:<id>.
const keyID = "qfpurge:id:"

// Config configures a Ledger.
type Config struct {
	// TTL is how long an ID's outcome is remembered. It must outlast any
	// redelivery of a batch. Defaults to 30 days.
	TTL time.Duration
	// EventsMaxLen caps EventStream (approximately, XADD MAXLEN ~).
	// Defaults to 100,000; negative means no cap.
	EventsMaxLen int64
	// Logger hears of outcomes refused because their ID moved on (e.g. a
	// dead verdict for an ID another batch deleted meanwhile). Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Ledger reads and writes outcomes. It is safe for concurrent use.
type Ledger struct {
	rdb redis.UniversalClient
	cfg Config
}

// New returns a Ledger on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Ledger {
	if cfg.TTL == 0 {
		cfg.TTL = 30 * 24 * time.Hour
	}
	if cfg.EventsMaxLen == 0 {
		cfg.EventsMaxLen = 100_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Ledger{rdb: rdb, cfg: cfg}
}

func idKey(k modelid.Kind, id modelid.ID) string {
	return keyID + string(k) + ":" + string(id.Type()) + ":" + id.String()
}

// Record is what the ledger knows of one ID.
type Record struct {
	Kind    modelid.Kind `json:"kind"`
	ID      modelid.ID   `json:"id"`
	State   State        `json:"state"`
	LogID   string       `json:"log_id,omitempty"`
	Code    int          `json:"code,omitempty"`
	Message string       `json:"message,omitempty"`
	TaskID  string       `json:"task_id,omitempty"`
	// Verified is when a listing showed the ID absent, for deletions whose
	// answer was lost.
	Verified time.Time `json:"verified,omitzero"`
	// Run is the rule run that planned the deletion, if any.
	Run string `json:"run,omitempty"`
	// API is the Qianfan API that answered: "v1" or "v2".
	API string    `json:"api,omitempty"`
	At  time.Time `json:"at"`
}

// Lookup returns the record of one ID; ok is false when none is kept.
func (l *Ledger) Lookup(ctx context.Context, k modelid.Kind, id modelid.ID) (r Record, ok bool, err error) {
	m, err := l.rdb.HGetAll(ctx, idKey(k, id)).Result()
	if err != nil || len(m) == 0 {
		return Record{}, false, err
	}
	return recordFrom(k, id, m), true, nil
}

// LookupMany returns the records of ids, in order, with one round trip; an
// ID with no record gets a Record with an empty State.
func (l *Ledger) LookupMany(ctx context.Context, k modelid.Kind, ids []modelid.ID) ([]Record, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, idKey(k, id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	out := make([]Record, len(ids))
	for i, c := range cmds {
		out[i] = recordFrom(k, ids[i], c.Val())
	}
	return out, nil
}

func recordFrom(k modelid.Kind, id modelid.ID, m map[string]string) Record {
	r := Record{Kind: k, ID: id, State: State(m["state"]), LogID: m["log_id"], Message: m["msg"], TaskID: m["task"], Run: m["run"], API: m["api"]}
	r.Code, _ = strconv.Atoi(m["code"])
	if ms, err := strconv.ParseInt(m["verified"], 10, 64); err == nil && ms > 0 {
		r.Verified = time.UnixMilli(ms).UTC()
	}
	if sec, err := strconv.ParseInt(m["at"], 10, 64); err == nil {
		r.At = time.Unix(sec, 0).UTC()
	}
	return r
}

// states reads the state of each of ids of one kind, with one round trip.
func (l *Ledger) states(ctx context.Context, keys []string) ([]State, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGet(ctx, k, "state")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	out := make([]State, len(keys))
	for i, c := range cmds {
		out[i] = State(c.Val())
	}
	return out, nil
}

// Gone reports which of ids need no further call (State.Gone), with one
// round trip.
func (l *Ledger) Gone(ctx context.Context, k modelid.Kind, ids []modelid.ID) (map[modelid.ID]bool, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = idKey(k, id)
	}
	st, err := l.states(ctx, keys)
	if err != nil {
		return nil, err
	}
	gone := make(map[modelid.ID]bool)
	for i, s := range st {
		if s.Gone() {
			gone[ids[i]] = true
		}
	}
	return gone, nil
}

// Outcome is one ID's end, written to the ledger and the event stream, and
// for dead IDs to the dead-letter stream.
type Outcome struct {
	Kind     modelid.Kind
	ID       modelid.ID
	State    State
	LogID    string
	Code     int
	Message  string
	TaskID   string
	Attempts int
	// Verified: see Record.Verified.
	Verified time.Time
	// Run: see Record.Run.
	Run string
	// API: see Record.API.
	API string
	At  time.Time
}

func (o Outcome) entry() deadletter.Entry {
	return deadletter.Entry{Kind: o.Kind, ID: o.ID, Code: o.Code, Message: o.Message, LogID: o.LogID,
		TaskID: o.TaskID, Attempts: o.Attempts, API: o.API, At: o.At}
}

// Write records outcomes: the ID's state (with TTL), an event, and for dead
// IDs a dead letter, all in one round trip after one read of the current
// states. An outcome whose ID's current state may not become it
// (State.CanBecome, e.g. dead for an ID another batch deleted meanwhile) is
// dropped and logged. It returns the outcomes written.
func (l *Ledger) Write(ctx context.Context, outs []Outcome) ([]Outcome, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(outs))
	for i, o := range outs {
		keys[i] = idKey(o.Kind, o.ID)
	}
	cur, err := l.states(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("ledger: write %d outcomes: %w", len(outs), err)
	}
	written := outs[:0:0]
	pipe := l.rdb.Pipeline()
	for i, o := range outs {
		if !cur[i].CanBecome(o.State) {
			l.cfg.Logger.Warn("outcome not recorded: the ID has moved on", "kind", o.Kind, "id", o.ID.String(),
				"state", cur[i], "outcome", o.State, "task_id", o.TaskID)
			continue
		}
		if o.At.IsZero() {
			o.At = time.Now()
		}
		fields := []any{"state", string(o.State), "log_id", o.LogID, "code", o.Code, "msg", o.Message, "task", o.TaskID, "at", o.At.Unix()}
		if !o.Verified.IsZero() {
			fields = append(fields, "verified", o.Verified.UnixMilli())
		}
		if o.Run != "" {
			fields = append(fields, "run", o.Run)
		}
		if o.API != "" {
			fields = append(fields, "api", o.API)
		}
		pipe.Del(ctx, keys[i])
		pipe.HSet(ctx, keys[i], fields...)
		pipe.Expire(ctx, keys[i], l.cfg.TTL)
		e := o.entry()
		if o.State == StateDead {
			deadletter.Append(ctx, pipe, e)
		}
		f := e.Fields()
		f["outcome"] = string(o.State)
		if !o.Verified.IsZero() {
			f["verified_at"] = o.Verified.UTC().Format(time.RFC3339)
		}
		if o.Run != "" {
			f["run"] = o.Run
		}
		ev := &redis.XAddArgs{Stream: EventStream, Values: f}
		if l.cfg.EventsMaxLen > 0 {
			ev.MaxLen, ev.Approx = l.cfg.EventsMaxLen, true
		}
		pipe.XAdd(ctx, ev)
		written = append(written, o)
	}
	if len(written) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: write %d outcomes: %w", len(written), err)
	}
	return written, nil
}

// TTL returns how long the record of one ID is still kept (negative when
// there is none).
func (l *Ledger) TTL(ctx context.Context, k modelid.Kind, id modelid.ID) (time.Duration, error) {
	return l.rdb.TTL(ctx, idKey(k, id)).Result()
}

// FleetEvent adds an event about the whole fleet, not one ID (outcome
// "paused", "resumed", ...), to EventStream.
func (l *Ledger) FleetEvent(ctx context.Context, outcome, message string) error {
	ev := &redis.XAddArgs{Stream: EventStream, Values: map[string]any{
		"outcome": outcome, "message": message, "time": time.Now().UTC().Format(time.RFC3339),
		"id": "", "id_type": "", "kind": "", "log_id": "", "code": "0", "task_id": "", "attempts": "0",
	}}
	if l.cfg.EventsMaxLen > 0 {
		ev.MaxLen, ev.Approx = l.cfg.EventsMaxLen, true
	}
	return l.rdb.XAdd(ctx, ev).Err()
}
