package tasks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Redis keys owned by qfpurge (Asynq keeps its own under "asynq:").
const (
	// DeadLetterStream records every dead ID without a cap, because Asynq's
	// archive silently drops tasks past 10,000 per queue.
	DeadLetterStream = "qfpurge:deadletters"
	// EventStream carries one event per outcome for other systems to follow.
	EventStream = "qfpurge:events"
	keyID       = "qfpurge:id:"
	keyUncert   = "qfpurge:uncertain:"
	keyRefuted  = "qfpurge:refuted:"
	keyVerdict  = "qfpurge:verdict:"
	keyInflight = "qfpurge:inflight:"
	keyCleared  = "qfpurge:cleared:"
)

// States of an ID in the ledger.
const (
	StateDeleted  = "deleted"  // a call that deleted it answered success
	StatePresumed = "presumed" // an earlier call's lost answer most likely deleted it
	StateDead     = "dead"     // dead-lettered
)

// LedgerConfig configures a Ledger.
type LedgerConfig struct {
	// TTL is how long an ID's outcome is remembered. It must outlast any
	// redelivery of a batch. Defaults to 30 days.
	TTL time.Duration
	// EventsMaxLen caps EventStream (approximately, XADD MAXLEN ~).
	// Defaults to 100,000; negative means no cap.
	EventsMaxLen int64
}

// Ledger is qfpurge's record of outcomes in Redis: which IDs are deleted
// (so a repeated call's "param invalid" is not mistaken for a bad ID), the
// dead letters, and the outcome events.
type Ledger struct {
	rdb redis.UniversalClient
	cfg LedgerConfig
}

// NewLedger returns a Ledger on rdb.
func NewLedger(rdb redis.UniversalClient, cfg LedgerConfig) *Ledger {
	if cfg.TTL == 0 {
		cfg.TTL = 30 * 24 * time.Hour
	}
	if cfg.EventsMaxLen == 0 {
		cfg.EventsMaxLen = 100_000
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
	State   string       `json:"state"`
	LogID   string       `json:"log_id,omitempty"`
	Code    int          `json:"code,omitempty"`
	Message string       `json:"message,omitempty"`
	TaskID  string       `json:"task_id,omitempty"`
	At      time.Time    `json:"at"`
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
	r := Record{Kind: k, ID: id, State: m["state"], LogID: m["log_id"], Message: m["msg"], TaskID: m["task"]}
	r.Code, _ = strconv.Atoi(m["code"])
	if sec, err := strconv.ParseInt(m["at"], 10, 64); err == nil {
		r.At = time.Unix(sec, 0).UTC()
	}
	return r
}

// Gone reports which of ids are already deleted or presumed deleted, with one
// round trip.
func (l *Ledger) Gone(ctx context.Context, k modelid.Kind, ids []modelid.ID) (map[modelid.ID]bool, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, idKey(k, id), "state")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	gone := make(map[modelid.ID]bool)
	for i, c := range cmds {
		if s := c.Val(); s == StateDeleted || s == StatePresumed {
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
	State    string
	LogID    string
	Code     int
	Message  string
	TaskID   string
	Attempts int
	At       time.Time
}

func (o Outcome) fields() map[string]any {
	return map[string]any{
		"id":       o.ID.String(),
		"id_type":  string(o.ID.Type()),
		"kind":     string(o.Kind),
		"outcome":  o.State,
		"log_id":   o.LogID,
		"code":     strconv.Itoa(o.Code),
		"message":  o.Message,
		"task_id":  o.TaskID,
		"attempts": strconv.Itoa(o.Attempts),
		"time":     o.At.UTC().Format(time.RFC3339),
	}
}

// Write records outcomes in one round trip: the ID's state (with TTL), an
// event, and for dead IDs a dead letter.
func (l *Ledger) Write(ctx context.Context, outs []Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	pipe := l.rdb.Pipeline()
	for _, o := range outs {
		if o.At.IsZero() {
			o.At = time.Now()
		}
		key := idKey(o.Kind, o.ID)
		pipe.HSet(ctx, key, "state", o.State, "log_id", o.LogID, "code", o.Code, "msg", o.Message,
			"task", o.TaskID, "at", o.At.Unix())
		pipe.Expire(ctx, key, l.cfg.TTL)
		f := o.fields()
		if o.State == StateDead {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: DeadLetterStream, Values: f})
		}
		ev := &redis.XAddArgs{Stream: EventStream, Values: f}
		if l.cfg.EventsMaxLen > 0 {
			ev.MaxLen, ev.Approx = l.cfg.EventsMaxLen, true
		}
		pipe.XAdd(ctx, ev)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ledger: write %d outcomes: %w", len(outs), err)
	}
	return nil
}

// MarkUncertain remembers that a call made by task taskID lost its answer.
func (l *Ledger) MarkUncertain(ctx context.Context, taskID string) error {
	return l.rdb.Set(ctx, keyUncert+taskID, 1, l.cfg.TTL).Err()
}

// BeginCall marks a call of taskID as under way. A mark left by an earlier
// execution means that execution died (or was stopped) during its call:
// the call is then recorded as uncertain.
func (l *Ledger) BeginCall(ctx context.Context, taskID string) error {
	ok, err := l.rdb.SetNX(ctx, keyInflight+taskID, 1, l.cfg.TTL).Result()
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if !ok {
		return l.MarkUncertain(ctx, taskID)
	}
	return nil
}

// EndCall clears the mark once the call's answer has been acted on.
func (l *Ledger) EndCall(ctx context.Context, taskID string) {
	l.rdb.Del(ctx, keyInflight+taskID)
}

// Clear records that ids, descended from the rejected batch suspect, were
// deleted. No-op when suspect is empty.
func (l *Ledger) Clear(ctx context.Context, suspect string, ids []modelid.ID) error {
	if suspect == "" || len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = string(id.Type()) + ":" + id.String()
	}
	pipe := l.rdb.TxPipeline()
	pipe.SAdd(ctx, keyCleared+suspect, members...)
	pipe.Expire(ctx, keyCleared+suspect, l.cfg.TTL)
	_, err := pipe.Exec(ctx)
	return err
}

// Cleared counts the IDs of the rejected batch suspect deleted since.
func (l *Ledger) Cleared(ctx context.Context, suspect string) (int, error) {
	n, err := l.rdb.SCard(ctx, keyCleared+suspect).Result()
	return int(n), err
}

// Uncertain reports whether a call of taskID ever lost its answer.
func (l *Ledger) Uncertain(ctx context.Context, taskID string) (bool, error) {
	n, err := l.rdb.Exists(ctx, keyUncert+taskID).Result()
	return n > 0, err
}

// Refute records that the lost-answer calls of these tasks did not delete
// their IDs: a later call deleted some of the same IDs, which could not have
// happened had the earlier call succeeded (Qianfan rejects a list holding a
// missing ID as a whole).
func (l *Ledger) Refute(ctx context.Context, taskIDs []string) error {
	if len(taskIDs) == 0 {
		return nil
	}
	pipe := l.rdb.Pipeline()
	for _, id := range taskIDs {
		pipe.Set(ctx, keyRefuted+id, 1, l.cfg.TTL)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Unrefuted returns those of taskIDs whose lost-answer call may still have
// deleted its IDs.
func (l *Ledger) Unrefuted(ctx context.Context, taskIDs []string) ([]string, error) {
	if len(taskIDs) == 0 {
		return nil, nil
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(taskIDs))
	for i, id := range taskIDs {
		cmds[i] = pipe.Exists(ctx, keyRefuted+id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var out []string
	for i, c := range cmds {
		if c.Val() == 0 {
			out = append(out, taskIDs[i])
		}
	}
	return out, nil
}

// DeadLetter is one entry of DeadLetterStream.
type DeadLetter struct {
	EntryID  string       `json:"entry_id"`
	Kind     modelid.Kind `json:"kind"`
	ID       modelid.ID   `json:"id"`
	Code     int          `json:"code"`
	Message  string       `json:"message"`
	LogID    string       `json:"log_id,omitempty"`
	TaskID   string       `json:"task_id,omitempty"`
	Attempts int          `json:"attempts"`
	At       time.Time    `json:"time"`
}

// Reason renders the dead letter's cause, e.g. "500001 param invalid (log_id 2443985832)".
func (d DeadLetter) Reason() string {
	s := d.Message
	if d.Code != 0 {
		s = strconv.Itoa(d.Code) + " " + s
	}
	if d.LogID != "" {
		s += " (log_id " + d.LogID + ")"
	}
	return s
}

// DeadLetters pages through DeadLetterStream from after entry ID `after`
// ("" for the start), at most count entries.
func (l *Ledger) DeadLetters(ctx context.Context, after string, count int64) ([]DeadLetter, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	msgs, err := l.rdb.XRangeN(ctx, DeadLetterStream, start, "+", count).Result()
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, parseDeadLetter(m))
	}
	return out, nil
}

// DeadLetterCount is the length of DeadLetterStream.
func (l *Ledger) DeadLetterCount(ctx context.Context) (int64, error) {
	return l.rdb.XLen(ctx, DeadLetterStream).Result()
}

// DeleteDeadLetters removes entries, e.g. after they were requeued.
func (l *Ledger) DeleteDeadLetters(ctx context.Context, entryIDs ...string) error {
	if len(entryIDs) == 0 {
		return nil
	}
	return l.rdb.XDel(ctx, DeadLetterStream, entryIDs...).Err()
}

func parseDeadLetter(m redis.XMessage) DeadLetter {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	d := DeadLetter{EntryID: m.ID, Kind: modelid.Kind(str("kind")), Message: str("message"), LogID: str("log_id"), TaskID: str("task_id")}
	d.ID, _ = modelid.ParseID(str("id"), str("id_type") == string(modelid.IDString))
	d.Code, _ = strconv.Atoi(str("code"))
	d.Attempts, _ = strconv.Atoi(str("attempts"))
	d.At, _ = time.Parse(time.RFC3339, str("time"))
	return d
}

// DeferVerdict records that task taskID (one ID) answered qe after a lost
// answer and its verdict waits; it returns how many times it has waited.
func (l *Ledger) DeferVerdict(ctx context.Context, taskID string, qe *qianfan.Error) (int, error) {
	key := keyVerdict + taskID
	pipe := l.rdb.TxPipeline()
	if qe != nil {
		pipe.HSet(ctx, key, "code", qe.Code, "msg", qe.Message, "log_id", qe.LogID)
	}
	n := pipe.HIncrBy(ctx, key, "n", 1)
	pipe.Expire(ctx, key, l.cfg.TTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("ledger: %w", err)
	}
	return int(n.Val()), nil
}

// PendingVerdict returns the answer a deferred task got, or nil.
func (l *Ledger) PendingVerdict(ctx context.Context, taskID string) (*qianfan.Error, error) {
	m, err := l.rdb.HGetAll(ctx, keyVerdict+taskID).Result()
	if err != nil || len(m) == 0 {
		return nil, err
	}
	qe := &qianfan.Error{Message: m["msg"], LogID: m["log_id"]}
	qe.Code, _ = strconv.Atoi(m["code"])
	return qe, nil
}
