package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Limits of the dead-letter routes.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
	maxEntryIDs      = 10_000
	entryPage        = 1000
)

// deadLetterPage is the answer of GET /v1/deadletters.
type deadLetterPage struct {
	DeadLetters []deadletter.Entry `json:"dead_letters"`
	// Total is the stream's length.
	Total int64 `json:"total"`
	// Next is the "after" value of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
}

func (a *API) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after := q.Get("after")
	if after != "" {
		if _, _, err := deadletter.ParseEntryID(after); err != nil {
			writeError(w, http.StatusBadRequest, "after: "+err.Error(), nil)
			return
		}
	}
	limit := defaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			writeError(w, http.StatusBadRequest, "limit "+strconv.Quote(s)+": want 1 to "+strconv.Itoa(maxListLimit), nil)
			return
		}
		limit = n
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	dls, err := a.d.DeadLetters.List(ctx, after, int64(limit)+1)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	total, err := a.d.DeadLetters.Count(ctx)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	page := deadLetterPage{DeadLetters: dls, Total: total}
	if len(dls) > limit {
		page.DeadLetters = dls[:limit]
		page.Next = dls[limit-1].EntryID
	}
	writeJSON(w, http.StatusOK, page)
}

// entriesRequest is the body of the requeue and purge routes: entry_ids or
// all, not both.
type entriesRequest struct {
	EntryIDs []string `json:"entry_ids"`
	All      bool     `json:"all"`
}

// entries reads the body and the entries it names. It writes the error
// answer and returns ok false on failure; missing lists entry IDs not in the
// stream (already requeued or purged).
func (a *API) entries(ctx context.Context, w http.ResponseWriter, r *http.Request) (es []deadletter.Entry, missing []string, ok bool) {
	var body entriesRequest
	if !a.decodeBody(w, r, &body) {
		return nil, nil, false
	}
	switch {
	case body.All == (len(body.EntryIDs) > 0):
		writeError(w, http.StatusBadRequest, `give "entry_ids" (a non-empty list) or "all": true, not both`, nil)
		return nil, nil, false
	case len(body.EntryIDs) > maxEntryIDs:
		writeError(w, http.StatusBadRequest, "at most "+strconv.Itoa(maxEntryIDs)+` entry_ids per request; use "all": true for more`, nil)
		return nil, nil, false
	}
	var bad []string
	for _, id := range body.EntryIDs {
		if _, _, err := deadletter.ParseEntryID(id); err != nil {
			bad = append(bad, id)
		}
	}
	if len(bad) > 0 {
		writeError(w, http.StatusBadRequest, "malformed entry IDs: want <milliseconds>-<sequence>", bad)
		return nil, nil, false
	}
	var err error
	if body.All {
		es, err = a.d.DeadLetters.All(ctx, entryPage)
	} else {
		es, missing, err = a.d.DeadLetters.Get(ctx, body.EntryIDs)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return nil, nil, false
	}
	return es, missing, true
}

// requeueResponse is the answer of POST /v1/deadletters/requeue.
type requeueResponse struct {
	deadletter.Result[enqueue.Receipt]
	Missing []string `json:"missing,omitempty"`
	Warning string   `json:"warning,omitempty"`
}

func (a *API) requeue(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := requestContext(r)
	defer cancel()
	entries, missing, ok := a.entries(ctx, w, r)
	if !ok {
		return
	}
	p := principal(r)
	for _, e := range entries {
		if e.Kind != "" && !p.Scope.AllowsKind(e.Kind) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %q may not delete kind %s (its kinds: %s): dead letter %s is of that kind; nothing requeued",
				p.Name, e.Kind, kindList(p.Scope.Kinds), e.EntryID), nil)
			return
		}
	}
	pe := &pendingEnqueuer{a: a}
	res, err := deadletter.Requeue(ctx, a.d.DeadLetters, func(ctx context.Context, k modelid.Kind, ids []modelid.ID) (enqueue.Receipt, error) {
		req := enqueue.Request{Kind: k, IDs: ids}
		a.attribute(&req, p)
		return pe.Enqueue(ctx, req)
	}, a.d.Archive, entries)
	resp := requeueResponse{Result: res, Missing: missing}
	if pe.warn != nil {
		resp.Warning = "requeued, but the IDs could not be marked pending: " + pe.warn.Error()
	}
	if err != nil {
		if res.Requeued == 0 {
			writeJSON(w, http.StatusInternalServerError, struct {
				Error string `json:"error"`
				requeueResponse
			}{err.Error(), requeueResponse{Result: res, Missing: missing}})
			return
		}
		// The IDs were enqueued; only cleaning up failed.
		resp.Warning = strings.TrimPrefix(resp.Warning+"; "+err.Error(), "; ")
	}
	a.log.Info("dead letters requeued", "requested_by", p.Name, "requeued", res.Requeued, "skipped", len(res.Skipped), "archived_deleted", res.ArchivedDeleted)
	writeJSON(w, http.StatusOK, resp)
}

// purgeResponse is the answer of POST /v1/deadletters/purge.
type purgeResponse struct {
	deadletter.PurgeResult
	Missing []string `json:"missing,omitempty"`
	Warning string   `json:"warning,omitempty"`
}

func (a *API) purge(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := requestContext(r)
	defer cancel()
	entries, missing, ok := a.entries(ctx, w, r)
	if !ok {
		return
	}
	res, err := deadletter.Purge(ctx, a.d.DeadLetters, a.d.Archive, entries)
	resp := purgeResponse{PurgeResult: res, Missing: missing}
	if err != nil {
		if res.Purged == 0 {
			writeError(w, http.StatusInternalServerError, err.Error(), nil)
			return
		}
		resp.Warning = "purged, but some archived tasks were left: " + err.Error()
	}
	a.log.Info("dead letters purged", "purged", res.Purged, "archived_deleted", res.ArchivedDeleted)
	writeJSON(w, http.StatusOK, resp)
}
