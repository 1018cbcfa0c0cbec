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
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/fleet"
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
	// Clock defaults to the wall clock.
	Clock fleet.Clock
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
	cfg.Clock = fleet.Or(cfg.Clock)
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
	API string `json:"api,omitempty"`
	// DeleteInUse: the request overrode the in-use check.
	DeleteInUse bool `json:"delete_in_use,omitempty"`
	// RequestedBy names who asked for the deletion (an API token's name,
	// enqueue --as, a schedule entry); Key is the request's key.
	RequestedBy string    `json:"requested_by,omitempty"`
	Key         string    `json:"key,omitempty"`
	At          time.Time `json:"at"`
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
	r := Record{Kind: k, ID: id, State: State(m["state"]), LogID: m["log_id"], Message: m["msg"], TaskID: m["task"], Run: m["run"], API: m["api"],
		DeleteInUse: m["delete_in_use"] == "1", RequestedBy: m["by"], Key: m["key"]}
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
	// DeleteInUse: the request overrode the in-use check.
	DeleteInUse bool
	// RequestedBy and Key: see Record.
	RequestedBy, Key string
	At               time.Time
}

func (o Outcome) entry() deadletter.Entry {
	return deadletter.Entry{Kind: o.Kind, ID: o.ID, Code: o.Code, Message: o.Message, LogID: o.LogID,
		TaskID: o.TaskID, Attempts: o.Attempts, API: o.API, RequestedBy: o.RequestedBy, Key: o.Key, At: o.At}
}

// writeScript writes one ID's record if its current state is one of
// ARGV[3] (states joined by ",", "" for none): the transition check and the
// write are one step, so two workers cannot both pass the check. It returns
// 1 when written, else the state that refused it.
var writeScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'state') or ''
if not string.find(',' .. ARGV[2] .. ',', ',' .. cur .. ',', 1, true) then
  return cur
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`)

// allStates lists every state a record can hold, the empty one first.
var allStates = []State{"", StatePending, StateDeleted, StatePresumed, StateProtected, StateDead, StateCancelled, StateRefused}

// from lists, for the script, the states that may become next.
func from(next State) string {
	var ok []string
	for _, s := range allStates {
		if s.CanBecome(next) {
			ok = append(ok, string(s))
		}
	}
	return strings.Join(ok, ",")
}

// Write records outcomes: each ID's state (with TTL), checked against its
// current state and written in one step per ID (State.CanBecome: e.g. dead
// for an ID another batch deleted meanwhile is dropped and logged), then
// an event per outcome written, and a dead letter per dead one. Two round
// trips for the whole batch. It returns the outcomes written.
func (l *Ledger) Write(ctx context.Context, outs []Outcome) ([]Outcome, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	now := l.cfg.Clock.Now()
	for i := range outs {
		if outs[i].At.IsZero() {
			outs[i].At = now
		}
	}
	cmds, err := l.writeStates(ctx, outs, true)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		cmds, err = l.writeStates(ctx, outs, false) // first use, or Redis lost its scripts: send the text
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: write %d outcomes: %w", len(outs), err)
	}
	written := outs[:0:0]
	for i, o := range outs {
		if n, err := cmds[i].Int64(); err == nil && n == 1 {
			written = append(written, o)
			continue
		}
		l.cfg.Logger.Warn("outcome not recorded: the ID has moved on", "kind", o.Kind, "id", o.ID.String(),
			"state", cmds[i].Val(), "outcome", o.State, "task_id", o.TaskID)
	}
	if len(written) == 0 {
		return nil, nil
	}
	pipe := l.rdb.Pipeline()
	for _, o := range written {
		e := o.entry()
		if o.State == StateDead {
			deadletter.Append(ctx, pipe, e)
		}
		pipe.XAdd(ctx, l.event(o, e))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: write %d outcome events: %w", len(written), err)
	}
	return written, nil
}

// writeStates runs writeScript for every outcome in one pipeline, by its
// SHA or, when sha is false, with its text.
func (l *Ledger) writeStates(ctx context.Context, outs []Outcome, sha bool) ([]*redis.Cmd, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(outs))
	for i, o := range outs {
		keys := []string{idKey(o.Kind, o.ID)}
		args := append([]any{l.cfg.TTL.Milliseconds(), from(o.State)}, o.fields()...)
		if sha {
			cmds[i] = writeScript.EvalSha(ctx, pipe, keys, args...)
		} else {
			cmds[i] = writeScript.Eval(ctx, pipe, keys, args...)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	return cmds, nil
}

// fields are the record's hash fields.
func (o Outcome) fields() []any {
	f := []any{"state", string(o.State), "log_id", o.LogID, "code", o.Code, "msg", o.Message, "task", o.TaskID, "at", o.At.Unix()}
	if !o.Verified.IsZero() {
		f = append(f, "verified", o.Verified.UnixMilli())
	}
	if o.Run != "" {
		f = append(f, "run", o.Run)
	}
	if o.API != "" {
		f = append(f, "api", o.API)
	}
	if o.DeleteInUse {
		f = append(f, "delete_in_use", 1)
	}
	if o.RequestedBy != "" {
		f = append(f, "by", o.RequestedBy)
	}
	if o.Key != "" {
		f = append(f, "key", o.Key)
	}
	return f
}

// event is the outcome's entry in EventStream.
func (l *Ledger) event(o Outcome, e deadletter.Entry) *redis.XAddArgs {
	f := e.Fields()
	f["outcome"] = string(o.State)
	if !o.Verified.IsZero() {
		f["verified_at"] = o.Verified.UTC().Format(time.RFC3339)
	}
	if o.Run != "" {
		f["run"] = o.Run
	}
	if o.DeleteInUse {
		f["delete_in_use"] = "true"
	}
	ev := &redis.XAddArgs{Stream: EventStream, Values: f}
	if l.cfg.EventsMaxLen > 0 {
		ev.MaxLen, ev.Approx = l.cfg.EventsMaxLen, true
	}
	return ev
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
		"outcome": outcome, "message": message, "time": l.cfg.Clock.Now().UTC().Format(time.RFC3339),
		"id": "", "id_type": "", "kind": "", "log_id": "", "code": "0", "task_id": "", "attempts": "0",
	}}
	if l.cfg.EventsMaxLen > 0 {
		ev.MaxLen, ev.Approx = l.cfg.EventsMaxLen, true
	}
	return l.rdb.XAdd(ctx, ev).Err()
}

// keyCancelled marks a request (by its key) as cancelled: its IDs that no
// call has carried yet end cancelled when their batch comes up.
const keyCancelled = "qfpurge:cancelled:"

// CancelRequest marks the request with key as cancelled, by who, for as
// long as outcomes are kept. It reports whether it was not cancelled yet.
func (l *Ledger) CancelRequest(ctx context.Context, key, by string) (bool, error) {
	ok, err := l.rdb.SetNX(ctx, keyCancelled+key, by, l.cfg.TTL).Result()
	if err != nil {
		return false, fmt.Errorf("ledger: cancel %q: %w", key, err)
	}
	return ok, nil
}

// Cancelled maps each of keys that was cancelled to who cancelled it.
func (l *Ledger) Cancelled(ctx context.Context, keys []string) (map[string]string, error) {
	out := map[string]string{}
	if len(keys) == 0 {
		return out, nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = keyCancelled + k
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(full))
	for i, k := range full {
		cmds[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	for i, c := range cmds {
		if by, err := c.Result(); err == nil {
			out[keys[i]] = by
		}
	}
	return out, nil
}

// keyCancelID marks one ID as cancelled (by who asked), whatever request
// holds it: qfpurge:cancel-id:<kind>:<id type>:<id>.
const keyCancelID = "qfpurge:cancel-id:"

func cancelIDKey(k modelid.Kind, id modelid.ID) string {
	return keyCancelID + string(k) + ":" + string(id.Type()) + ":" + id.String()
}

// CancelledID is what cancelling one ID found.
type CancelledID struct {
	ID modelid.ID `json:"id"`
	// Marked: the ID had no final outcome; the batch holding it records
	// it cancelled before any call (unless a call already carries it).
	Marked bool `json:"marked"`
	// State is the outcome it already had when not Marked (deleted, dead,
	// protected, ...): it was sent, or settled, before the cancel. When
	// Marked it is pending (enqueued through the API) or empty (no record:
	// enqueued otherwise, or not at all).
	State State `json:"state,omitempty"`
}

// CancelIDs marks each of ids that has no final outcome as cancelled by
// by, for as long as outcomes are kept; IDs already settled are reported
// with their state and left alone. Two round trips.
func (l *Ledger) CancelIDs(ctx context.Context, k modelid.Kind, ids []modelid.ID, by string) ([]CancelledID, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = idKey(k, id)
	}
	st, err := l.states(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]CancelledID, len(ids))
	pipe := l.rdb.Pipeline()
	for i, id := range ids {
		out[i] = CancelledID{ID: id, State: st[i]}
		if st[i].Final() {
			continue
		}
		out[i].Marked = true
		pipe.Set(ctx, cancelIDKey(k, id), by, l.cfg.TTL)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: cancel IDs: %w", err)
	}
	return out, nil
}

// Before reads, for a batch before its call, which of ids need no further
// call (State.Gone) and which were cancelled by ID (mapped to who
// cancelled them), with one round trip.
func (l *Ledger) Before(ctx context.Context, k modelid.Kind, ids []modelid.ID) (gone map[modelid.ID]bool, cancelled map[modelid.ID]string, err error) {
	pipe := l.rdb.Pipeline()
	sts := make([]*redis.StringCmd, len(ids))
	marks := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		sts[i] = pipe.HGet(ctx, idKey(k, id), "state")
		marks[i] = pipe.Get(ctx, cancelIDKey(k, id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("ledger: %w", err)
	}
	gone, cancelled = map[modelid.ID]bool{}, map[modelid.ID]string{}
	for i, id := range ids {
		if State(sts[i].Val()).Gone() {
			gone[id] = true
		}
		if by, err := marks[i].Result(); err == nil {
			cancelled[id] = by
		}
	}
	return gone, cancelled, nil
}

// ClearCancelIDs drops the cancel marks of ids once their cancelled outcome
// is written, so enqueuing them again later deletes them.
func (l *Ledger) ClearCancelIDs(ctx context.Context, k modelid.Kind, ids []modelid.ID) error {
	if len(ids) == 0 {
		return nil
	}
	pipe := l.rdb.Pipeline()
	for _, id := range ids {
		pipe.Del(ctx, cancelIDKey(k, id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ledger: clear cancel marks: %w", err)
	}
	return nil
}
