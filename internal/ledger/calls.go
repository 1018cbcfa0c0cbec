package ledger

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Keys of the records about calls, by task ID.
const (
	keyUncert   = "qfpurge:uncertain:"
	keyRefuted  = "qfpurge:refuted:"
	keyVerdict  = "qfpurge:verdict:"
	keyInflight = "qfpurge:inflight:"
	keyCleared  = "qfpurge:cleared:"
)

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
