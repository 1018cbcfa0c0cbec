package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
)

// TypeRuleRun is the task that plans and runs a rule on a worker: the
// scheduler's ticks and the HTTP API submit one, since planning a large
// account takes minutes (one detail call per model whose versions a rule
// ranks or ages).
const TypeRuleRun = "qianfan:rule-run"

// taskPayload is TypeRuleRun's payload: the rule as it was when submitted,
// so every worker runs the same rule whatever file it has.
type taskPayload struct {
	Run           string    `json:"run"`
	Spec          Rule      `json:"spec"`
	Mode          Mode      `json:"mode"`
	Trigger       string    `json:"trigger"`
	By            string    `json:"by,omitempty"`
	Tick          time.Time `json:"tick,omitzero"`
	OverrideLimit bool      `json:"override_limit,omitempty"`
	Names         []string  `json:"names,omitempty"`
}

// taskTimeout bounds one execution: 50,000 models at 10 calls/s is about
// 80 minutes of detail calls at most.
const taskTimeout = 3 * time.Hour

// Submit records a queued run and enqueues a TypeRuleRun task for it, which
// a worker executes (Runner.ProcessTask). The task ID is the run's, so
// submitting the same run again (a schedule tick seen by every replica)
// adds nothing and returns the existing record.
func (r *Runner) Submit(ctx context.Context, rule Rule, o Options) (Record, error) {
	if err := o.check(&rule, r.cfg.Now()); err != nil {
		return Record{}, err
	}
	rec := r.newRecord(rule, o, StatusQueued)
	created, err := r.store.create(ctx, &rec)
	if err != nil {
		return rec, err
	}
	if !created {
		return r.store.Get(ctx, o.ID)
	}
	b, err := json.Marshal(taskPayload{Run: o.ID, Spec: rule, Mode: o.Mode, Trigger: o.Trigger, By: o.By, Tick: o.Tick,
		OverrideLimit: o.OverrideLimit, Names: o.Names})
	if err != nil {
		return rec, err
	}
	_, err = r.q.EnqueueContext(ctx, asynq.NewTask(TypeRuleRun, b), asynq.Queue(asynqlayout.Queue), asynq.TaskID("rule-run:"+o.ID),
		asynq.MaxRetry(3), asynq.Timeout(taskTimeout), asynq.Retention(24*time.Hour))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		rec.Error = "could not be queued: " + err.Error()
		_ = r.end(context.WithoutCancel(ctx), &rec, StatusFailed)
		return rec, err
	}
	return rec, nil
}

// ProcessTask implements asynq.Handler for TypeRuleRun. A plan that fails
// is retried under the same run ID (up to three times); a blocked plan is
// an answer, not a failure.
func (r *Runner) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p taskPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("rule run: decode payload: %v: %w", err, asynq.SkipRetry)
	}
	if ps := p.Spec.Compile(); len(ps) > 0 {
		return fmt.Errorf("rule run %s: rule %q: %s: %w", p.Run, p.Spec.Name, ps[0].Msg, asynq.SkipRetry)
	}
	rec, _, err := r.Execute(ctx, p.Spec, Options{ID: p.Run, Mode: p.Mode, Trigger: p.Trigger, By: p.By, Tick: p.Tick,
		OverrideLimit: p.OverrideLimit, Names: p.Names})
	if err != nil {
		return fmt.Errorf("rule run %s (%s): %w", p.Run, p.Spec.Name, err)
	}
	if rw := t.ResultWriter(); rw != nil {
		if b, err := json.Marshal(rec); err == nil {
			_, _ = rw.Write(b)
		}
	}
	return nil
}
