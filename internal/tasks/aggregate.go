package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Aggregator merges a group's small jobs into one batch task. It never
// returns nil and never panics out: Asynq strands a group's tasks on nil and
// a panic there kills the worker.
type Aggregator struct {
	Options Options
	Logger  *slog.Logger
}

// Aggregate implements asynq.GroupAggregator. IDs are merged and
// de-duplicated; a merged batch over the batch size (many multi-ID jobs in
// one group) is split by the handler before any call, so no call ever carries
// more than the batch size.
func (a *Aggregator) Aggregate(group string, ts []*asynq.Task) (out *asynq.Task) {
	log := a.Logger
	if log == nil {
		log = slog.Default()
	}
	kind, _, _, gerr := ParseGroupName(group)
	var p Payload
	defer func() {
		if r := recover(); r != nil {
			log.Error("aggregator panicked; keeping the jobs as unreadable", "group", group, "panic", r)
			out = a.fallback(ts, kind)
		}
	}()
	for _, t := range ts {
		jp, err := DecodePayload(t.Payload())
		if err != nil || (p.Kind != "" && jp.Kind != p.Kind) || (gerr == nil && jp.Kind != kind) {
			p.Rejected = append(p.Rejected, string(t.Payload()))
			continue
		}
		p.Kind = jp.Kind
		p.IDs = append(p.IDs, jp.IDs...)
		p.Rejected = append(p.Rejected, jp.Rejected...)
	}
	if p.Kind == "" {
		p.Kind = cmpKind(kind)
	}
	p.IDs = modelid.Dedupe(p.IDs)
	t, err := NewBatchTask(p, a.Options)
	if err != nil {
		log.Error("aggregator could not build a batch", "group", group, "err", err)
		return a.fallback(ts, kind)
	}
	log.Debug("aggregated", "group", group, "jobs", len(ts), "ids", len(p.IDs))
	return t
}

func cmpKind(k modelid.Kind) modelid.Kind {
	if k == "" {
		return modelid.KindModel
	}
	return k
}

// fallback keeps every job's raw payload so the handler dead-letters them.
func (a *Aggregator) fallback(ts []*asynq.Task, k modelid.Kind) *asynq.Task {
	p := Payload{Kind: cmpKind(k)}
	for _, t := range ts {
		p.Rejected = append(p.Rejected, string(t.Payload()))
	}
	t, err := NewBatchTask(p, a.Options)
	if err != nil {
		// Marshalling strings cannot fail; still, never hand Asynq a nil.
		return asynq.NewTask(TypeDeleteBatch, []byte(`{"kind":"model","model_ids":[]}`))
	}
	return t
}

// sweepScript re-registers groups that hold tasks but are missing from the
// queue's set of groups. Asynq's recoverer puts a crashed worker's
// aggregation set back into its group without re-adding the group's name, and
// the aggregator only visits named groups: the tasks would sit unseen.
// KEYS[1] is the queue's groups set, KEYS[2..] the group keys; ARGV the names.
var sweepScript = redis.NewScript(`
local added = {}
for i = 2, #KEYS do
  if redis.call("EXISTS", KEYS[i]) == 1 then
    if redis.call("SADD", KEYS[1], ARGV[i-1]) == 1 then
      table.insert(added, ARGV[i-1])
    end
  end
end
return added`)

// SweepGroups re-registers stranded groups once and returns their names.
func SweepGroups(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	names := AllGroupNames()
	prefix := "asynq:{" + asynqlayout.Queue + "}:"
	keys := make([]string, 0, len(names)+1)
	keys = append(keys, prefix+"groups")
	args := make([]any, len(names))
	for i, n := range names {
		keys = append(keys, prefix+"g:"+n)
		args[i] = n
	}
	res, err := sweepScript.Run(ctx, rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("sweep groups: %w", err)
	}
	return res, nil
}

// RunSweeper calls SweepGroups and ReconcileArchive every interval until
// ctx is done.
func RunSweeper(ctx context.Context, rdb redis.UniversalClient, l *ledger.Ledger, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for {
		if added, err := SweepGroups(ctx, rdb); err != nil {
			if ctx.Err() == nil {
				log.Warn("group sweep failed", "err", err)
			}
		} else if len(added) > 0 {
			log.Warn("re-registered stranded groups", "groups", added)
		}
		if n, err := ReconcileArchive(ctx, rdb, insp, l); err != nil {
			if ctx.Err() == nil {
				log.Warn("archive reconciliation failed", "err", err)
			}
		} else if n > 0 {
			log.Error("recorded dead letters for batches Asynq archived after a crash", "ids", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// QianfanDeleter adapts *qianfan.Client to Deleter.
type QianfanDeleter struct{ Client *qianfan.Client }

// BatchDelete calls the endpoint for k with ids.
func (d QianfanDeleter) BatchDelete(ctx context.Context, k modelid.Kind, ids []modelid.ID) (qianfan.Result, error) {
	list := ToQianfan(ids)
	if k == modelid.KindVersion {
		return d.Client.BatchDeleteModelVersions(ctx, list)
	}
	return d.Client.BatchDeleteModels(ctx, list)
}

// ToQianfan converts IDs of one type to the client's list type.
func ToQianfan(ids []modelid.ID) qianfan.IDs {
	if len(ids) > 0 && ids[0].Type() == modelid.IDString {
		out := make(qianfan.StringIDs, len(ids))
		for i, id := range ids {
			out[i] = id.String()
		}
		return out
	}
	out := make(qianfan.IntIDs, len(ids))
	for i, id := range ids {
		out[i], _ = id.Int()
	}
	return out
}
