package policy

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Enqueuer is the part of *enqueue.Producer a run uses.
type Enqueuer interface {
	Enqueue(ctx context.Context, r enqueue.Request) (enqueue.Receipt, error)
}

// Observer hears of every run reaching an end, for metrics. It must be
// safe for concurrent use.
type Observer interface {
	RunEnded(rec Record)
}

// Config configures a Runner.
type Config struct {
	// Store configures the run records.
	Store StoreConfig
	// Concurrency is how many detail calls a plan makes at once. Defaults
	// to 4.
	Concurrency int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer defaults to none.
	Observer Observer
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Progress, when set, sees a plan's version detail reads (see
	// PlanOptions.Progress). Runs also log them every ProgressEvery.
	Progress func(done, total int)
	// ProgressEvery defaults to 30s.
	ProgressEvery time.Duration
}

// Runner plans rules and runs them: every preview and run is recorded
// (Store), and a run enqueues exactly its plan's deletions, carrying the
// run's ID and the rule's name so that workers check each batch against
// the services right before its call and the ledger ties each outcome to
// the run.
type Runner struct {
	src   Source
	prod  Enqueuer
	store *Store
	q     *asynq.Client
	cfg   Config
	log   *slog.Logger
}

// NewRunner returns a Runner reading the account through src and enqueuing
// through prod, with its records on rdb.
func NewRunner(rdb redis.UniversalClient, src Source, prod Enqueuer, cfg Config) *Runner {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runner{src: src, prod: prod, store: NewStore(rdb, cfg.Store), q: asynq.NewClientFromRedisClient(rdb),
		cfg: cfg, log: cfg.Logger}
}

// Store returns the run records.
func (r *Runner) Store() *Store { return r.store }

// Options say how a run was asked for.
type Options struct {
	// ID names the run; empty makes a new one (NewRunID).
	ID   string
	Mode Mode
	// Trigger is "schedule", "cli" or "api"; By who or what asked (no
	// secrets: a user@host, an API client's address, a schedule tick).
	Trigger string
	By      string
	Tick    time.Time
	// OverrideLimit runs a plan over the rule's limit (manual runs only).
	OverrideLimit bool
	// Names are the name scope of whoever asked (an API token's names):
	// workers refuse the run's deletions whose name is outside them.
	Names []string
}

var runIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$`)

// ValidRunID reports whether s can name a run.
func ValidRunID(s string) bool { return runIDRE.MatchString(s) }

// NewRunID names a new run of rule: its start time, the rule and a random
// suffix, e.g. "20260601T120000Z-ci-leftovers-3f9a2c".
func NewRunID(rule string, at time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return at.UTC().Format("20060102T150405Z") + "-" + rule + "-" + hex.EncodeToString(b)
}

// TickRunID names the run of a schedule tick, the same on every replica.
func TickRunID(rule string, tick time.Time) string {
	return tick.UTC().Format("20060102T150405Z") + "-" + rule + "-tick"
}

func (r *Runner) newRecord(rule Rule, o Options, status Status) Record {
	now := r.cfg.Now()
	return Record{ID: o.ID, Rule: rule.Name, Kind: rule.Kind, Mode: o.Mode, Trigger: o.Trigger, By: o.By, Tick: o.Tick,
		OverrideLimit: o.OverrideLimit, Names: o.Names, Status: status, Created: now, Updated: now, Protection: !rule.DeleteInUse,
		Limit: rule.Limit.withDefaults(), Spec: rule}
}

func (o *Options) check(rule *Rule, now time.Time) error {
	if o.ID == "" {
		o.ID = NewRunID(rule.Name, now)
	}
	if !ValidRunID(o.ID) {
		return fmt.Errorf("bad run ID %q", o.ID)
	}
	if o.Mode != ModePreview && o.Mode != ModeRun {
		return fmt.Errorf("bad mode %q: want preview or run", o.Mode)
	}
	if o.OverrideLimit && o.Mode == ModeRun && o.Trigger == "schedule" {
		return errors.New("a scheduled run cannot override its limit")
	}
	return rule.ready()
}

// Execute plans rule and records the plan; in ModeRun it then enqueues
// exactly the plan's deletions, unless the plan is over the rule's limit
// and o.OverrideLimit is not set. It returns the record and, when it
// planned, the plan.
//
// A plan that cannot be made (a listing or detail call failed) enqueues
// nothing: the record says failed and why, and the error is returned. A run
// executed again under the same ID (a retried task) redoes nothing settled;
// one that recorded its plan but did not finish enqueuing it enqueues the
// recorded deletions again, which the producer's key makes idempotent.
func (r *Runner) Execute(ctx context.Context, rule Rule, o Options) (Record, *Plan, error) {
	if err := o.check(&rule, r.cfg.Now()); err != nil {
		return Record{}, nil, err
	}
	rec, err := r.store.Get(ctx, o.ID)
	switch {
	case errors.Is(err, ErrNoRun):
		rec = r.newRecord(rule, o, StatusPlanning)
	case err != nil:
		return rec, nil, err
	case rec.Status.settled():
		return rec, nil, nil
	}
	rec.Attempts++
	rec.Updated = r.cfg.Now()
	if rec.Status == StatusEnqueuing {
		return r.enqueue(ctx, rec, nil)
	}
	rec.Status, rec.Error = StatusPlanning, ""
	if err := r.store.put(ctx, &rec); err != nil {
		return rec, nil, err
	}
	log := r.log.With("run", rec.ID, "rule", rule.Name, "mode", rec.Mode)
	plan, err := NewPlan(ctx, r.src, rule, PlanOptions{Now: r.cfg.Now(), Concurrency: r.cfg.Concurrency,
		Progress: r.progress(log)})
	if err != nil {
		rec.Error = "nothing deleted: " + err.Error()
		if ctx.Err() == nil {
			log.Error("rule run failed: nothing deleted", "err", err)
		}
		return rec, nil, errors.Join(err, r.end(context.WithoutCancel(ctx), &rec, StatusFailed))
	}
	rec.Inventory, rec.Totals, rec.Blocked, rec.Limit = plan.Inventory, plan.Totals, plan.Blocked, plan.Limit
	if err := r.store.putItems(ctx, rec.ID, plan.Items); err != nil {
		return rec, &plan, err
	}
	switch {
	case rec.Mode == ModePreview:
		return rec, &plan, r.end(ctx, &rec, StatusPreviewed)
	case plan.Blocked != "" && !o.OverrideLimit:
		log.Error("rule run blocked by its limit: nothing deleted", "blocked", plan.Blocked,
			"delete", plan.Totals.Delete, "considered", plan.Totals.Considered)
		return rec, &plan, r.end(ctx, &rec, StatusBlocked)
	case plan.Blocked != "":
		log.Warn("rule run over its limit, run anyway: the limit was overridden", "blocked", plan.Blocked, "by", rec.By)
	}
	ids := plan.Deletions()
	if len(ids) == 0 {
		return rec, &plan, r.end(ctx, &rec, StatusEmpty)
	}
	rec.Status = StatusEnqueuing
	if err := r.store.put(ctx, &rec); err != nil {
		return rec, &plan, err
	}
	rec, _, err = r.enqueue(ctx, rec, ids)
	return rec, &plan, err
}

// progress reports a plan's detail reads to Config.Progress and to the
// log, at most every ProgressEvery.
func (r *Runner) progress(log *slog.Logger) func(done, total int) {
	every := cmp.Or(r.cfg.ProgressEvery, 30*time.Second)
	var last time.Time
	return func(done, total int) {
		if r.cfg.Progress != nil {
			r.cfg.Progress(done, total)
		}
		now := r.cfg.Now()
		if done == 0 {
			last = now
			if total > 0 {
				log.Info("rule run: inventory read; reading version details", "models", total)
			}
			return
		}
		// total grows while the listing is read: done == total is the end
		// of a page, not of the plan.
		if now.Sub(last) >= every {
			last = now
			log.Info("rule run: reading version details", "done", done, "total", total)
		}
	}
}

// enqueue hands the run's deletions to the producer: ids, or the recorded
// ones when nil.
func (r *Runner) enqueue(ctx context.Context, rec Record, ids []modelid.ID) (Record, *Plan, error) {
	if ids == nil {
		items, _, err := r.store.Items(ctx, rec.ID, 0, 0)
		if err != nil {
			return rec, nil, err
		}
		for _, it := range items {
			if it.Action == ActionDelete {
				ids = append(ids, modelid.StringID(it.ID))
			}
		}
	}
	req := enqueue.Request{Kind: rec.Kind, IDs: ids, Key: "run:" + rec.ID, Run: rec.ID, Rule: rec.Rule,
		DeleteInUse: !rec.Protection, RequestedBy: "rule:" + rec.Rule, NameScope: rec.Names}
	rc, err := r.prod.Enqueue(ctx, req)
	if err != nil {
		rec.Error = fmt.Sprintf("enqueue stopped after %d batches (they will run; the rest follows when the run is retried): %v", len(rc.Batches), err)
		r.log.Error("rule run: enqueue failed part-way", "run", rec.ID, "rule", rec.Rule, "batches", len(rc.Batches), "err", err)
		_ = r.store.put(context.WithoutCancel(ctx), &rec)
		return rec, nil, err
	}
	rec.Batches, rec.Error = len(rc.Batches), ""
	r.log.Info("rule run enqueued", "run", rec.ID, "rule", rec.Rule, "ids", rc.IDs, "batches", len(rc.Batches),
		"override_limit", rec.OverrideLimit)
	return rec, nil, r.end(ctx, &rec, StatusEnqueued)
}

// end records the run's end, its event and its metric.
func (r *Runner) end(ctx context.Context, rec *Record, s Status) error {
	rec.Status, rec.Updated = s, r.cfg.Now()
	if err := r.store.put(ctx, rec); err != nil {
		return err
	}
	if r.cfg.Observer != nil {
		r.cfg.Observer.RunEnded(*rec)
	}
	if err := r.store.event(ctx, rec); err != nil {
		r.log.Warn("rule run: event not written", "run", rec.ID, "err", err)
	}
	if s != StatusFailed && s != StatusBlocked {
		r.log.Info("rule run ended", "run", rec.ID, "rule", rec.Rule, "mode", rec.Mode, "status", s,
			"delete", rec.Totals.Delete, "keep", rec.Totals.Keep, "protect", rec.Totals.Protect, "considered", rec.Totals.Considered)
	}
	return nil
}
