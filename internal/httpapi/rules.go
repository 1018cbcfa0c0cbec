package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/qfpurge/qfpurge/internal/policy"
)

// Rules lets the API preview and run the rules of the worker's schedule.
type Rules struct {
	// Lookup finds a rule entry of the schedule the worker runs.
	Lookup func(name string) (policy.Rule, bool)
	// Submitter queues a run for a worker to plan (and, in ModeRun, run).
	Submitter interface {
		Submit(ctx context.Context, rule policy.Rule, o policy.Options) (policy.Record, error)
	}
}

// runBody is the optional body of POST /v1/rules/{name}/run.
type runBody struct {
	// OverrideLimit runs a plan over the rule's limit, for this run only.
	OverrideLimit bool `json:"override_limit"`
}

func (a *API) previewRule(w http.ResponseWriter, r *http.Request) {
	a.submitRule(w, r, policy.ModePreview)
}
func (a *API) runRule(w http.ResponseWriter, r *http.Request) { a.submitRule(w, r, policy.ModeRun) }

// submitRule queues a preview or run: planning a large account takes
// minutes, so the answer is the queued run, to be read at /v1/runs/{id}.
func (a *API) submitRule(w http.ResponseWriter, r *http.Request, mode policy.Mode) {
	if a.d.Rules == nil || a.d.Rules.Lookup == nil || a.d.Rules.Submitter == nil {
		writeError(w, http.StatusNotFound, "no rules here: the worker runs no schedule file (--schedule)", nil)
		return
	}
	name := r.PathValue("name")
	rule, ok := a.d.Rules.Lookup(name)
	if !ok {
		writeError(w, http.StatusNotFound, "no rule entry named "+strconv.Quote(name)+" in the worker's schedule", nil)
		return
	}
	var body runBody
	if mode == policy.ModeRun && r.ContentLength != 0 {
		if !a.decodeBody(w, r, &body) {
			return
		}
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	rec, err := a.d.Rules.Submitter.Submit(ctx, rule, policy.Options{Mode: mode, Trigger: "api", By: principal(r).Name + "@" + r.RemoteAddr,
		OverrideLimit: body.OverrideLimit, Names: principal(r).Scope.Names})
	if err != nil {
		a.log.Error("rule run not queued", "rule", name, "mode", mode, "err", err)
		writeError(w, http.StatusInternalServerError, "not queued: "+err.Error(), nil)
		return
	}
	a.log.Info("rule run queued", "rule", name, "mode", mode, "run", rec.ID, "override_limit", body.OverrideLimit)
	w.Header().Set("Location", "/v1/runs/"+rec.ID)
	writeJSON(w, http.StatusAccepted, rec)
}

const (
	defaultRunsLimit  = 50
	maxRunsLimit      = 1000
	defaultItemsLimit = 1000
	maxItemsLimit     = 10_000
)

// intParam reads a non-negative query parameter, def when absent.
func intParam(r *http.Request, name string, def, max int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, errors.New(name + " must be a whole number from 0 to " + strconv.Itoa(max))
	}
	return n, nil
}

func (a *API) listRuns(w http.ResponseWriter, r *http.Request) {
	if a.d.Runs == nil {
		writeError(w, http.StatusNotFound, "run records are not available here", nil)
		return
	}
	limit, err := intParam(r, "limit", defaultRunsLimit, maxRunsLimit)
	if err == nil && limit == 0 {
		err = errors.New("limit must be at least 1")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	var before time.Time
	if s := r.URL.Query().Get("before"); s != "" {
		if before, err = time.Parse(time.RFC3339, s); err != nil {
			writeError(w, http.StatusBadRequest, "before must be an RFC 3339 time", nil)
			return
		}
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	runs, err := a.d.Runs.List(ctx, limit, before)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "list runs: "+err.Error(), nil)
		return
	}
	if runs == nil {
		runs = []policy.Record{}
	}
	writeJSON(w, http.StatusOK, struct {
		Runs []policy.Record `json:"runs"`
	}{runs})
}

// runDetail is GET /v1/runs/{id}: the record, and a page of its items with
// the outcome of each deletion.
type runDetail struct {
	Run    policy.Record        `json:"run"`
	Items  []policy.ItemOutcome `json:"items"`
	Total  int                  `json:"total_items"`
	Offset int                  `json:"offset"`
}

func (a *API) getRun(w http.ResponseWriter, r *http.Request) {
	if a.d.Runs == nil {
		writeError(w, http.StatusNotFound, "run records are not available here", nil)
		return
	}
	id := r.PathValue("id")
	if !policy.ValidRunID(id) {
		writeError(w, http.StatusBadRequest, "bad run ID", nil)
		return
	}
	offset, err := intParam(r, "offset", 0, 1<<30)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	limit, err := intParam(r, "limit", defaultItemsLimit, maxItemsLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	rec, err := a.d.Runs.Get(ctx, id)
	if errors.Is(err, policy.ErrNoRun) {
		writeError(w, http.StatusNotFound, "no record of run "+id+" (never made, or older than the records kept)", nil)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	items, total, err := a.d.Runs.Items(ctx, id, offset, max(limit, 1))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	d := runDetail{Run: rec, Offset: offset, Total: total}
	if d.Items, err = policy.Outcomes(ctx, a.d.Ledger, rec.Kind, items[:min(limit, len(items))]); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
