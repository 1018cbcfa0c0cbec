package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// Limits of the dead-letter routes.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
	maxRequeueIDs    = 10_000
	requeuePage      = 1000
)

// deadLetterPage is the answer of GET /v1/deadletters.
type deadLetterPage struct {
	DeadLetters []tasks.DeadLetter `json:"dead_letters"`
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
	dls, err := a.d.Ledger.DeadLetters(ctx, after, int64(limit)+1)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "read dead letters: "+err.Error(), nil)
		return
	}
	total, err := a.d.Ledger.DeadLetterCount(ctx)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "count dead letters: "+err.Error(), nil)
		return
	}
	page := deadLetterPage{DeadLetters: dls, Total: total}
	if len(dls) > limit {
		page.DeadLetters = dls[:limit]
		page.Next = dls[limit-1].EntryID
	}
	writeJSON(w, http.StatusOK, page)
}

// requeueRequest is the body of POST /v1/deadletters/requeue: entry_ids or
// all, not both.
type requeueRequest struct {
	EntryIDs []string `json:"entry_ids"`
	All      bool     `json:"all"`
}

// requeueResponse is its answer.
type requeueResponse struct {
	deadletter.Result
	// Missing lists entry IDs not in the stream (already requeued or purged).
	Missing []string `json:"missing,omitempty"`
	Warning string   `json:"warning,omitempty"`
}

func (a *API) requeue(w http.ResponseWriter, r *http.Request) {
	var body requeueRequest
	if !a.decodeBody(w, r, &body) {
		return
	}
	switch {
	case body.All == (len(body.EntryIDs) > 0):
		writeError(w, http.StatusBadRequest, `give "entry_ids" (a non-empty list) or "all": true, not both`, nil)
		return
	case len(body.EntryIDs) > maxRequeueIDs:
		writeError(w, http.StatusBadRequest, "at most "+strconv.Itoa(maxRequeueIDs)+" entry_ids per request; use \"all\": true for more", nil)
		return
	}
	var bad []string
	for _, id := range body.EntryIDs {
		if _, _, err := deadletter.ParseEntryID(id); err != nil {
			bad = append(bad, id)
		}
	}
	if len(bad) > 0 {
		writeError(w, http.StatusBadRequest, "malformed entry IDs: want <milliseconds>-<sequence>", bad)
		return
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	var (
		entries []tasks.DeadLetter
		missing []string
		err     error
	)
	if body.All {
		entries, err = deadletter.All(ctx, a.d.Ledger, requeuePage)
	} else {
		entries, missing, err = deadletter.Get(ctx, a.d.Ledger, body.EntryIDs)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "read dead letters: "+err.Error(), nil)
		return
	}
	pe := &pendingEnqueuer{a: a}
	res, err := deadletter.Requeue(ctx, a.d.Ledger, pe, a.d.Archive, entries)
	resp := requeueResponse{Result: res, Missing: missing}
	if pe.warn != nil {
		resp.Warning = "requeued, but the IDs could not be marked pending: " + pe.warn.Error()
	}
	if err != nil {
		status := http.StatusInternalServerError
		if res.Requeued > 0 {
			// The IDs were enqueued; only cleaning up failed.
			status = http.StatusOK
			resp.Warning = strings.TrimPrefix(resp.Warning+"; "+err.Error(), "; ")
		} else {
			resp.Warning = ""
			writeJSON(w, status, struct {
				Error string `json:"error"`
				requeueResponse
			}{err.Error(), resp})
			return
		}
	}
	a.log.Info("dead letters requeued", "requeued", res.Requeued, "skipped", len(res.Skipped), "archived_deleted", res.ArchivedDeleted)
	writeJSON(w, http.StatusOK, resp)
}
