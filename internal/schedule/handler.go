package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
)

// TypeScheduledPurge is the trigger task the scheduler enqueues at each tick.
const TypeScheduledPurge = "qianfan:scheduled-purge"

// Trigger is the payload of a TypeScheduledPurge task. It carries the entry,
// not the IDs of a file: the handler re-reads File at each run.
type Trigger struct {
	Name string       `json:"name"`
	Kind modelid.Kind `json:"kind"`
	// IDs sit under "model_ids", as in delete tasks, so asynqmon shows them.
	IDs  []modelid.ID `json:"model_ids,omitempty"`
	File string       `json:"file,omitempty"`
	// Rule is a rule entry's rule, as the file had it.
	Rule *policy.Rule `json:"rule,omitempty"`
	// Cron is the spec as registered, time zone included.
	Cron string `json:"cron"`
	// DeleteInUse: see Entry.DeleteInUse.
	DeleteInUse bool `json:"delete_in_use,omitempty"`
}

func (e Entry) trigger() Trigger {
	return Trigger{Name: e.Name, Kind: e.Kind, IDs: e.IDs, File: e.File, Rule: e.Rule, Cron: e.Spec(), DeleteInUse: e.DeleteInUse}
}

// Redis keys.
const (
	claimPrefix = "qfpurge:schedule:"       // + name + ":" + tick unix seconds
	firedPrefix = "qfpurge:schedule:fired:" // + trigger task ID → fire time (unix ns)
)

func claimKey(name string, tick time.Time) string {
	return claimPrefix + name + ":" + strconv.FormatInt(tick.Unix(), 10)
}

// Enqueuer is the part of *enqueue.Producer the handler uses.
type Enqueuer interface {
	Enqueue(ctx context.Context, r enqueue.Request) (enqueue.Receipt, error)
}

// RuleRunner submits rule runs; *policy.Runner is one.
type RuleRunner interface {
	Submit(ctx context.Context, rule policy.Rule, o policy.Options) (policy.Record, error)
}

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// Rules submits the runs of rule entries. Nil refuses them (the trigger
	// is archived with the reason).
	Rules RuleRunner
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Handler processes TypeScheduledPurge triggers: it finds the tick the
// trigger belongs to, claims the tick in Redis (SET NX
// qfpurge:schedule:<name>:<tick unix>), and only the claimant reads the IDs
// and enqueues them, with producer Key "schedule:<name>:<tick unix>". For a
// rule entry the claimant submits a rule run named after the tick
// (policy.TickRunID), which a worker plans and runs.
//
// The tick is computed from the spec and the time the trigger was enqueued,
// which the Scheduler records per trigger task (the handler's own clock is
// used when that record is missing, which only happens when the handler runs
// right after the enqueue). So triggers from every replica, even with clocks
// a few seconds apart or handled after a backlog, map to the same tick.
type Handler struct {
	rdb   redis.UniversalClient
	enq   Enqueuer
	rules RuleRunner
	log   *slog.Logger
	now   func() time.Time
	// observe, when set, sees every trigger's tick and whether it ran.
	observe func(name string, tick time.Time, ran bool)
}

// NewHandler returns a Handler that enqueues through enq.
func NewHandler(rdb redis.UniversalClient, enq Enqueuer, cfg HandlerConfig) *Handler {
	return &Handler{rdb: rdb, enq: enq, rules: cfg.Rules, log: cmpLogger(cfg.Logger), now: time.Now}
}

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	taskID, _ := asynq.GetTaskID(ctx)
	return h.process(ctx, t, taskID)
}

func (h *Handler) process(ctx context.Context, t *asynq.Task, taskID string) error {
	if taskID == "" {
		return fmt.Errorf("scheduled purge: no task ID: %w", asynq.SkipRetry)
	}
	var tr Trigger
	if err := json.Unmarshal(t.Payload(), &tr); err != nil {
		return fmt.Errorf("scheduled purge: decode payload: %v: %w", err, asynq.SkipRetry)
	}
	s, err := parseSpec(tr.Cron)
	if err != nil {
		return fmt.Errorf("scheduled purge %q: cron %q: %v: %w", tr.Name, tr.Cron, err, asynq.SkipRetry)
	}
	ref := h.now()
	if v, err := h.rdb.Get(ctx, firedPrefix+taskID).Int64(); err == nil {
		ref = time.Unix(0, v)
	} else if !errors.Is(err, redis.Nil) {
		return fmt.Errorf("scheduled purge %q: read fire time: %w", tr.Name, err)
	}
	tick, period := Tick(s, ref)
	log := h.log.With("schedule", tr.Name, "tick", tick.UTC().Format(time.RFC3339), "task_id", taskID)

	key := claimKey(tr.Name, tick)
	won, err := h.rdb.SetNX(ctx, key, taskID, claimTTL(period)).Result()
	if err != nil {
		return fmt.Errorf("scheduled purge %q: claim tick: %w", tr.Name, err)
	}
	if !won {
		owner, err := h.rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("scheduled purge %q: read claim: %w", tr.Name, err)
		}
		if owner != taskID { // a retry of the claimant goes on
			log.Debug("scheduled purge: tick already run by another trigger", "claimed_by", owner)
			h.forget(ctx, taskID)
			h.seen(tr.Name, tick, false)
			return nil
		}
	}
	h.seen(tr.Name, tick, true)
	if tr.Rule != nil {
		return h.submit(ctx, t, tr, tick, taskID, log)
	}

	ids, err := tr.read()
	if err != nil {
		log.Error("scheduled purge failed: cannot read IDs", "file", tr.File, "err", err)
		var inv *modelid.InvalidIDsError
		if errors.As(err, &inv) {
			return fmt.Errorf("scheduled purge %q: %w: %w", tr.Name, err, asynq.SkipRetry)
		}
		return fmt.Errorf("scheduled purge %q: %w", tr.Name, err)
	}
	if len(ids) == 0 {
		log.Info("scheduled purge: no IDs to delete", "file", tr.File)
		h.forget(ctx, taskID)
		return nil
	}
	rc, err := h.enq.Enqueue(ctx, enqueue.Request{
		Kind: tr.Kind,
		IDs:  ids,
		Key:  "schedule:" + tr.Name + ":" + strconv.FormatInt(tick.Unix(), 10),
		// The entry asked: its name is who asked.
		RequestedBy: "schedule:" + tr.Name,
		DeleteInUse: tr.DeleteInUse,
	})
	if err != nil {
		var inv *modelid.InvalidIDsError
		if errors.As(err, &inv) || errors.Is(err, enqueue.ErrNoIDs) {
			return fmt.Errorf("scheduled purge %q: %w: %w", tr.Name, err, asynq.SkipRetry)
		}
		return fmt.Errorf("scheduled purge %q: enqueue: %w", tr.Name, err)
	}
	log.Info("scheduled purge enqueued", "kind", tr.Kind, "ids", rc.IDs, "batches", len(rc.Batches), "file", tr.File)
	if rw := t.ResultWriter(); rw != nil {
		if b, err := json.Marshal(rc); err == nil {
			_, _ = rw.Write(b)
		}
	}
	h.forget(ctx, taskID)
	return nil
}

// submit hands a rule entry's tick to a worker as a rule run (planning a
// large account outlasts a trigger). The run's ID is the tick's, so a
// retried trigger submits nothing new.
func (h *Handler) submit(ctx context.Context, t *asynq.Task, tr Trigger, tick time.Time, taskID string, log *slog.Logger) error {
	if h.rules == nil {
		return fmt.Errorf("scheduled purge %q: this worker cannot run rules: %w", tr.Name, asynq.SkipRetry)
	}
	rec, err := h.rules.Submit(ctx, *tr.Rule, policy.Options{ID: policy.TickRunID(tr.Name, tick), Mode: policy.ModeRun,
		Trigger: "schedule", By: "tick " + tick.UTC().Format(time.RFC3339), Tick: tick})
	if err != nil {
		return fmt.Errorf("scheduled purge %q: submit rule run: %w", tr.Name, err)
	}
	log.Info("scheduled rule run submitted", "run", rec.ID, "status", rec.Status)
	if rw := t.ResultWriter(); rw != nil {
		if b, err := json.Marshal(rec); err == nil {
			_, _ = rw.Write(b)
		}
	}
	h.forget(ctx, taskID)
	return nil
}

func (h *Handler) seen(name string, tick time.Time, ran bool) {
	if h.observe != nil {
		h.observe(name, tick, ran)
	}
}

// forget drops the fire-time record of a handled trigger.
func (h *Handler) forget(ctx context.Context, taskID string) {
	if taskID != "" {
		_ = h.rdb.Del(ctx, firedPrefix+taskID).Err()
	}
}

// read returns the inline IDs, or reads the file again.
func (tr Trigger) read() ([]modelid.ID, error) {
	if tr.File == "" {
		return tr.IDs, nil
	}
	data, err := os.ReadFile(tr.File)
	if err != nil {
		return nil, err
	}
	return modelid.ParseIDs(bytes.NewReader(data), tr.Kind)
}

func cmpLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
