package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Keys of the call records.
const (
	keyCall  = "qfpurge:call:" // + task ID: the one record of a batch's call
	keyCalls = "qfpurge:calls" // task IDs whose call is under way, scored by its start (unix ms)
)

// CallState is where a batch's call stands.
type CallState string

// The call states. A record is deleted once its batch's outcome is written.
const (
	// CallUnderWay: written ahead of the call. Found by a later execution, it
	// means the execution that wrote it died during the call: its answer is
	// lost.
	CallUnderWay CallState = "calling"
	// CallAnswered: the call ended without an outcome for the batch yet
	// (a retry follows).
	CallAnswered CallState = "answered"
	// CallInDoubt: the batch was rejected after a lost answer; it waits for a
	// listing to tell which of its IDs the lost call deleted.
	CallInDoubt CallState = "doubt"
)

// Call is the one record of a batch task's call (or calls, across retries).
type Call struct {
	State CallState
	// Lost is when an answer of this batch was first lost (zero: never). A
	// lost call may have deleted the IDs.
	Lost time.Time
	// LostSeq is the fleet's order stamp of that loss: only a listing
	// stamped after it can tell what the lost call did.
	LostSeq int64
	// Code, Message and LogID are the last rejection's, kept for the dead
	// letters a verification may write.
	Code    int
	Message string
	LogID   string
	// Present holds IDs the last listing showed before the first call: a
	// later listing's absence proves them deleted.
	Present []modelid.ID
	// Seen holds IDs a detail call showed before the first call; a listing
	// need not return them, so only another detail call proves them gone.
	Seen []modelid.ID
	// Absent holds IDs shown not to exist by an answer no lost call can
	// explain: a detail call before the first call, or a V2 "not found"
	// while none of the batch's answers was lost.
	Absent []modelid.ID
	// API is the API of the calls in doubt ("v2": one ID per call).
	API string
	// Done holds IDs whose outcome this batch already recorded (V2 records
	// each ID as it goes), so a retry calls only the others.
	Done []modelid.ID
	// Asked is the order stamp at which the in-use check asked for a
	// listing to place the batch's int IDs (0: never): a listing stamped
	// after it answers.
	Asked int64
	// Names holds, by ID text, the model names the evidence showed before
	// the first call (a listing): what a lost answer's filtered listing
	// asks for.
	Names map[string]string
	// Probe says how a batch in doubt is settled: ProbeByName (reads of its
	// IDs by name) or ProbeListing (a listing of the account); "" not yet
	// chosen.
	Probe string
}

// The ways of settling a batch in doubt (Call.Probe).
const (
	ProbeByName  = "name"
	ProbeListing = "listing"
)

// Doubted reports whether an answer of this batch was ever lost.
func (c Call) Doubted() bool { return !c.Lost.IsZero() }

// Call returns taskID's call record (the zero Call when there is none).
func (l *Ledger) Call(ctx context.Context, taskID string) (Call, error) {
	m, err := l.rdb.HGetAll(ctx, keyCall+taskID).Result()
	if err != nil {
		return Call{}, fmt.Errorf("ledger: read call: %w", err)
	}
	return callFrom(m), nil
}

func callFrom(m map[string]string) Call {
	c := Call{State: CallState(m["state"]), Message: m["msg"], LogID: m["log_id"], API: m["api"]}
	c.Code, _ = strconv.Atoi(m["code"])
	if ms, err := strconv.ParseInt(m["lost"], 10, 64); err == nil && ms > 0 {
		c.Lost = time.UnixMilli(ms)
	}
	c.LostSeq, _ = strconv.ParseInt(m["lost_seq"], 10, 64)
	c.Present = parseIDList(m["present"])
	c.Absent = parseIDList(m["absent"])
	c.Seen = parseIDList(m["seen"])
	c.Asked, _ = strconv.ParseInt(m["asked"], 10, 64)
	c.Done = parseIDList(m["done"])
	c.Probe = m["probe"]
	if raw := m["names"]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &c.Names) // unreadable: no names, a listing settles
	}
	return c
}

func parseIDList(s string) []modelid.ID {
	var out []modelid.ID
	for line := range strings.SplitSeq(s, "\n") {
		if t, v, ok := strings.Cut(line, ":"); ok {
			if id, err := modelid.Stored(v, modelid.IDType(t)); err == nil {
				out = append(out, id)
			}
		}
	}
	return out
}

func idList(ids []modelid.ID) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = string(id.Type()) + ":" + id.String()
	}
	return strings.Join(parts, "\n")
}

// NoteDone adds IDs whose outcome the batch recorded to its call record.
func (l *Ledger) NoteDone(ctx context.Context, taskID string, done []modelid.ID) error {
	c, err := l.Call(ctx, taskID)
	if err != nil {
		return err
	}
	pipe := l.rdb.TxPipeline()
	pipe.HSet(ctx, keyCall+taskID, "done", idList(append(c.Done, done...)))
	pipe.PExpire(ctx, keyCall+taskID, l.cfg.TTL)
	_, err = pipe.Exec(ctx)
	return err
}

// beginScript marks a call under way; a mark already there is a call whose
// execution died, so its answer is lost. It returns the record as it stands.
var beginScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') == 'calling' and redis.call('HEXISTS', KEYS[1], 'lost') == 0 then
  redis.call('HSET', KEYS[1], 'lost', ARGV[1], 'lost_seq', ARGV[3])
end
redis.call('HSET', KEYS[1], 'state', 'calling')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
`)

// BeginCall writes the call ahead: if this process dies during the call, the
// next execution finds the mark and counts the call's answer as lost. It
// returns the record (Lost set when an earlier execution died mid-call).
func (l *Ledger) BeginCall(ctx context.Context, taskID string) (Call, error) {
	now := l.cfg.Clock.Now()
	// Stamped before the call: a death during it is a loss ordered before
	// any listing that starts afterwards.
	seq, err := fleet.Stamp(ctx, l.rdb)
	if err != nil {
		return Call{}, err
	}
	res, err := beginScript.Run(ctx, l.rdb, []string{keyCall + taskID}, now.UnixMilli(), l.cfg.TTL.Milliseconds(), seq).StringSlice()
	if err != nil {
		return Call{}, fmt.Errorf("ledger: begin call: %w", err)
	}
	m := map[string]string{}
	for i := 0; i+1 < len(res); i += 2 {
		m[res[i]] = res[i+1]
	}
	if err := l.rdb.ZAdd(ctx, keyCalls, redis.Z{Score: float64(now.UnixMilli()), Member: taskID}).Err(); err != nil {
		return Call{}, fmt.Errorf("ledger: begin call: %w", err)
	}
	return callFrom(m), nil
}

// Answered records that the call ended without an outcome for the batch;
// lost says its answer was lost (the first loss is kept).
func (l *Ledger) Answered(ctx context.Context, taskID string, lost bool) error {
	return l.update(ctx, taskID, CallAnswered, lost, nil)
}

// InDoubt records a rejection after a lost answer (lost, when this call's
// own answer was lost too) with the rejection's code, message and log_id,
// and the API of the calls in doubt.
func (l *Ledger) InDoubt(ctx context.Context, taskID string, lost bool, code int, msg, logID, api string) error {
	return l.update(ctx, taskID, CallInDoubt, lost, []any{"code", code, "msg", msg, "log_id", logID, "api", api})
}

func (l *Ledger) update(ctx context.Context, taskID string, st CallState, lost bool, extra []any) error {
	key := keyCall + taskID
	var seq int64
	if lost {
		var err error
		if seq, err = fleet.Stamp(ctx, l.rdb); err != nil {
			return err
		}
	}
	pipe := l.rdb.TxPipeline()
	pipe.HSet(ctx, key, append([]any{"state", string(st)}, extra...)...)
	if lost {
		pipe.HSetNX(ctx, key, "lost", l.cfg.Clock.Now().UnixMilli())
		pipe.HSetNX(ctx, key, "lost_seq", seq)
	}
	pipe.PExpire(ctx, key, l.cfg.TTL)
	pipe.ZRem(ctx, keyCalls, taskID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ledger: record call: %w", err)
	}
	return nil
}

// NotePresent adds IDs a detail call or a listing showed to exist to the
// batch's call record, with the names the listing showed (Call.Names; nil
// for none).
func (l *Ledger) NotePresent(ctx context.Context, taskID string, ids []modelid.ID, names map[modelid.ID]string) error {
	return l.note(ctx, taskID, "present", func(c Call) []modelid.ID { return c.Present }, ids, func(c Call) []any {
		if len(names) == 0 {
			return nil
		}
		m := maps.Clone(c.Names)
		if m == nil {
			m = make(map[string]string, len(names))
		}
		for id, n := range names {
			m[id.String()] = n
		}
		raw, _ := json.Marshal(m) // a map of strings always encodes
		return []any{"names", string(raw)}
	})
}

// NoteProbe records how the batch in doubt is settled (Call.Probe).
func (l *Ledger) NoteProbe(ctx context.Context, taskID, how string) error {
	pipe := l.rdb.TxPipeline()
	pipe.HSet(ctx, keyCall+taskID, "probe", how)
	pipe.PExpire(ctx, keyCall+taskID, l.cfg.TTL)
	_, err := pipe.Exec(ctx)
	return err
}

// NoteAsked records the stamp at which the batch asked for a listing
// (Call.Asked), replacing an earlier one.
func (l *Ledger) NoteAsked(ctx context.Context, taskID string, seq int64) error {
	pipe := l.rdb.TxPipeline()
	pipe.HSet(ctx, keyCall+taskID, "asked", seq)
	pipe.PExpire(ctx, keyCall+taskID, l.cfg.TTL)
	_, err := pipe.Exec(ctx)
	return err
}

// NoteSeen adds IDs a detail call showed to exist to the batch's call
// record.
func (l *Ledger) NoteSeen(ctx context.Context, taskID string, ids []modelid.ID) error {
	return l.note(ctx, taskID, "seen", func(c Call) []modelid.ID { return c.Seen }, ids)
}

// NoteAbsent adds IDs shown not to exist (see Call.Absent) to the batch's
// call record.
func (l *Ledger) NoteAbsent(ctx context.Context, taskID string, ids []modelid.ID) error {
	return l.note(ctx, taskID, "absent", func(c Call) []modelid.ID { return c.Absent }, ids)
}

func (l *Ledger) note(ctx context.Context, taskID, field string, had func(Call) []modelid.ID, ids []modelid.ID, more ...func(Call) []any) error {
	c, err := l.Call(ctx, taskID)
	if err != nil {
		return err
	}
	all := had(c)
	for _, id := range ids {
		if !slices.Contains(all, id) {
			all = append(all, id)
		}
	}
	pipe := l.rdb.TxPipeline()
	fields := []any{field, idList(all)}
	for _, f := range more {
		fields = append(fields, f(c)...)
	}
	pipe.HSet(ctx, keyCall+taskID, fields...)
	pipe.PExpire(ctx, keyCall+taskID, l.cfg.TTL)
	_, err = pipe.Exec(ctx)
	return err
}

// EndCall drops the record once the batch's outcome is written.
func (l *Ledger) EndCall(ctx context.Context, taskID string) error {
	pipe := l.rdb.TxPipeline()
	pipe.Del(ctx, keyCall+taskID)
	pipe.ZRem(ctx, keyCalls, taskID)
	_, err := pipe.Exec(ctx)
	return err
}

// CallsUnderWay counts calls begun since since and not yet answered.
func (l *Ledger) CallsUnderWay(ctx context.Context, since time.Time) (int, error) {
	n, err := l.rdb.ZCount(ctx, keyCalls, strconv.FormatInt(since.UnixMilli(), 10), "+inf").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("ledger: %w", err)
	}
	return int(n), nil
}

// keyThrough marks, for a batch whose call lost its answer, that a batch
// split from it after a listing was deleted: the lost call deleted nothing.
const keyThrough = "qfpurge:through:"

// NoteThrough records that a batch of lostIn's line went through.
func (l *Ledger) NoteThrough(ctx context.Context, lostIn string) error {
	if err := l.rdb.Set(ctx, keyThrough+lostIn, 1, l.cfg.TTL).Err(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Through reports whether a batch of lostIn's line went through.
func (l *Ledger) Through(ctx context.Context, lostIn string) (bool, error) {
	n, err := l.rdb.Exists(ctx, keyThrough+lostIn).Result()
	if err != nil {
		return false, fmt.Errorf("ledger: %w", err)
	}
	return n > 0, nil
}
