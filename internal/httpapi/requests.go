package httpapi

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// maxListIDs is the most IDs of each state GET /v1/requests/{key} lists.
const maxListIDs = 10_000

// getRequest answers who asked for a request, when, and how many of
// its IDs are in each state; ?ids=N lists up to N IDs of each state.
func (a *API) getRequest(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if key == "" || len(key) > maxKeyLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("key: want 1 to %d characters", maxKeyLen), nil)
		return
	}
	list := 0
	if v := r.URL.Query().Get("ids"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxListIDs {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("ids %q: want how many IDs of each state to list, 0 to %d", v, maxListIDs), nil)
			return
		}
		list = n
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	st, err := enqueue.ReadRequest(ctx, a.d.Redis, a.d.Ledger, key, list)
	switch {
	case errors.Is(err, enqueue.ErrNoRequest):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no request %q is recorded (requests are recorded under their receipt's key, given or generated, for 30 days)", key), nil)
		return
	case err != nil:
		a.log.Error("reading a request failed", "key", key, "err", err)
		writeError(w, http.StatusInternalServerError, "reading the request failed: "+err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// cancelIDResponse answers DELETE /v1/deletions/{id}.
type cancelIDResponse struct {
	Kind   modelid.Kind `json:"kind"`
	ID     modelid.ID   `json:"id"`
	IDType string       `json:"id_type"`
	// Cancelled: the ID had no final outcome; the batch holding it records
	// it cancelled before any call (unless a call already carries it).
	Cancelled bool `json:"cancelled"`
	// State is the outcome it already had otherwise: it was sent, or
	// settled, before the cancel. With cancelled, it is pending (enqueued
	// through this API) or absent (no record yet).
	State   string `json:"state,omitempty"`
	Message string `json:"message"`
}

// cancelDeletion cancels one ID wherever it waits, whatever request holds
// it.
func (a *API) cancelDeletion(w http.ResponseWriter, r *http.Request) {
	k, err := modelid.ParseKind(cmp.Or(r.URL.Query().Get("kind"), string(modelid.KindModel)))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	raw := r.PathValue("id")
	id, err := modelid.ParseID(raw)
	if err == nil {
		err = id.CheckKind(k)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ID %q: %s", raw, err), nil)
		return
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	by := principal(r).Name
	got, err := a.d.Ledger.CancelIDs(ctx, k, []modelid.ID{id}, by)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	c := got[0]
	resp := cancelIDResponse{Kind: k, ID: id, IDType: string(id.Type()), Cancelled: c.Marked, State: string(c.State)}
	if c.Marked {
		resp.Message = "recorded cancelled when its batch comes up, before any call; if a call already carries it, that call's outcome stands"
		if c.State == "" {
			resp.Message += "; the ledger holds nothing of it yet: if no batch holds it, the mark lapses after the ledger's TTL"
		}
	} else {
		resp.Message = "already " + string(c.State) + ": it was sent (or settled) before the cancel; nothing changed"
		if c.State == ledger.StateCancelled {
			resp.Message = "already cancelled; nothing changed"
		}
	}
	a.log.Info("deletion cancelled by ID", "kind", k, "id", id.String(), "by", by, "marked", c.Marked, "state", c.State)
	writeJSON(w, http.StatusOK, resp)
}
