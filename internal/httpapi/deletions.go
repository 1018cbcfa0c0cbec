package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
	"unicode"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/inuse"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// deletionRequest is the body of POST /v1/deletions.
type deletionRequest struct {
	// ModelIDs: JSON numbers are int IDs, JSON strings are string IDs.
	ModelIDs  []json.RawMessage `json:"model_ids"`
	Kind      string            `json:"kind"`
	ProcessAt string            `json:"process_at"`
	ProcessIn string            `json:"process_in"`
	Key       string            `json:"key"`
	// DeleteInUse overrides the workers' in-use check for this request
	// only; it is recorded with each outcome.
	DeleteInUse bool `json:"delete_in_use"`
	// DryRun deletes nothing: the answer says, per ID, what a run would do
	// now (exists, in use and by what, already gone, cannot tell).
	DryRun bool `json:"dry_run"`
}

// maxKeyLen bounds the idempotency key.
const maxKeyLen = 200

// deletionResponse is the 202 answer: the producer's receipt, flattened.
type deletionResponse struct {
	enqueue.Receipt
	// Follow is the request's path: GET follows it, DELETE cancels it.
	Follow string `json:"follow"`
	// Warning is set when the IDs were enqueued but not marked pending.
	Warning string `json:"warning,omitempty"`
}

// requestPath is where a request is followed (GET) and cancelled (DELETE).
func requestPath(key string) string { return "/v1/requests/" + url.PathEscape(key) }

func (a *API) postDeletions(w http.ResponseWriter, r *http.Request) {
	started := a.cfg.Now()
	var body deletionRequest
	if !a.decodeBody(w, r, &body) {
		return
	}
	req, invalid, err := body.request(started)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), invalid)
		return
	}
	p := principal(r)
	if !p.Scope.AllowsKind(req.Kind) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("token %q may not delete kind %s (its kinds: %s)", p.Name, req.Kind, kindList(p.Scope.Kinds)), nil)
		return
	}
	a.attribute(&req, p)
	ctx, cancel := requestContext(r)
	defer cancel()
	if body.DryRun {
		a.dryRun(ctx, w, req)
		return
	}
	q, ok := a.reserve(ctx, w, p, len(modelid.Dedupe(req.IDs)), started)
	if !ok {
		return
	}
	pe := &pendingEnqueuer{a: a}
	rc, err := pe.Enqueue(ctx, req)
	q.settle(ctx, rc)
	if err != nil {
		if ie, ok := errors.AsType[*modelid.InvalidIDsError](err); ok {
			writeError(w, http.StatusBadRequest, ie.Error(), ie.Invalid)
			return
		}
		if errors.Is(err, enqueue.ErrKeyConflict) {
			writeError(w, http.StatusConflict, err.Error(), nil)
			return
		}
		a.log.Error("enqueue failed", "kind", req.Kind, "ids", len(req.IDs), "batches_enqueued", len(rc.Batches), "err", err)
		writeJSON(w, http.StatusInternalServerError, struct {
			Error   string          `json:"error"`
			Receipt enqueue.Receipt `json:"receipt"`
		}{"enqueue failed part-way (sending the same request again is safe): " + err.Error(), rc})
		return
	}
	resp := deletionResponse{Receipt: rc, Follow: requestPath(rc.Key)}
	if pe.warn != nil {
		resp.Warning = "enqueued, but the IDs could not be marked pending: " + pe.warn.Error()
	}
	a.log.Info("deletions enqueued", "kind", rc.Kind, "ids", rc.IDs, "batches", len(rc.Batches), "requested_by", p.Name, "key", rc.Key)
	writeJSON(w, http.StatusAccepted, resp)
}

// request checks the body and turns it into a producer request. On invalid
// IDs it returns them all (nothing is enqueued).
func (b deletionRequest) request(now time.Time) (enqueue.Request, []modelid.InvalidID, error) {
	var req enqueue.Request
	kind := b.Kind
	if kind == "" {
		kind = string(modelid.KindModel)
	}
	k, err := modelid.ParseKind(kind)
	if err != nil {
		return req, nil, err
	}
	req.Kind = k
	req.DeleteInUse = b.DeleteInUse
	if len(b.ModelIDs) == 0 {
		return req, nil, errors.New("model_ids: " + enqueue.ErrNoIDs.Error())
	}
	var bad modelid.InvalidIDsError
	for i, raw := range b.ModelIDs {
		id, err := modelid.ParseJSONID(raw)
		if err == nil {
			err = id.CheckKind(k)
		}
		if err != nil {
			bad.Add(modelid.InvalidID{Index: i, Text: string(raw), Reason: err.Error()})
			continue
		}
		req.IDs = append(req.IDs, id)
	}
	if bad.Count() > 0 {
		return req, bad.Invalid, &bad
	}
	switch {
	case b.ProcessAt != "" && b.ProcessIn != "":
		return req, nil, errors.New("give process_at or process_in, not both")
	case b.ProcessAt != "":
		t, err := time.Parse(time.RFC3339, b.ProcessAt)
		if err != nil {
			return req, nil, fmt.Errorf("process_at %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", b.ProcessAt)
		}
		if err := enqueue.CheckWhen(t, now); err != nil {
			return req, nil, fmt.Errorf("process_at: %w", err)
		}
		// A time just past means now.
		if t.After(now) {
			req.ProcessAt = t
		}
	case b.ProcessIn != "":
		d, err := time.ParseDuration(b.ProcessIn)
		if err != nil {
			return req, nil, fmt.Errorf("process_in %q: want a duration such as \"90s\" or \"10m\"", b.ProcessIn)
		}
		if err := enqueue.CheckDelay(d); err != nil {
			return req, nil, fmt.Errorf("process_in: %w", err)
		}
		if d > 0 {
			req.ProcessAt = now.Add(d)
		}
	}
	if len(b.Key) > maxKeyLen {
		return req, nil, fmt.Errorf("key is %d bytes long; at most %d", len(b.Key), maxKeyLen)
	}
	for _, c := range b.Key {
		if unicode.IsControl(c) || unicode.IsSpace(c) {
			return req, nil, errors.New("key must not hold spaces or control characters")
		}
	}
	req.Key = b.Key
	return req, nil, nil
}

// deletionState is the answer of GET /v1/deletions/{id}.
type deletionState struct {
	Kind    modelid.Kind `json:"kind"`
	ID      modelid.ID   `json:"id"`
	IDType  string       `json:"id_type"`
	State   string       `json:"state"`
	LogID   string       `json:"log_id,omitempty"`
	Code    int          `json:"code,omitempty"`
	Message string       `json:"message,omitempty"`
	TaskID  string       `json:"task_id,omitempty"`
	At      *time.Time   `json:"at,omitempty"`
	// Verified is when a listing showed the ID absent after a lost answer.
	Verified *time.Time `json:"verified,omitempty"`
	// Run is the rule run that planned the deletion.
	Run string `json:"run,omitempty"`
	// API is the Qianfan API that answered: v1 or v2.
	API string `json:"api,omitempty"`
	// RequestedBy and Key: who asked, and the request's key.
	RequestedBy string `json:"requested_by,omitempty"`
	Key         string `json:"key,omitempty"`
	// DeleteInUse: the request overrode the in-use check.
	DeleteInUse bool `json:"delete_in_use,omitempty"`
}

// StateUnknown is answered for IDs the ledger holds nothing about.
const StateUnknown = "unknown"

func (a *API) getDeletion(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	k, err := modelid.ParseKind(cmp.Or(q.Get("kind"), string(modelid.KindModel)))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	raw := r.PathValue("id")
	// The ID's form tells its type; id_type, when given, must agree.
	id, err := modelid.ParseID(raw)
	if err == nil {
		err = id.CheckKind(k)
	}
	switch t := q.Get("id_type"); {
	case err != nil:
		err = fmt.Errorf("ID %q: %w", raw, err)
	case t != "" && t != string(modelid.IDInt) && t != string(modelid.IDString):
		err = fmt.Errorf("id_type %q: want int or string", t)
	case t != "" && t != string(id.Type()):
		err = fmt.Errorf("ID %q is of type %s, not %s (id_type may be left out: the ID's form tells)", raw, id.Type(), t)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	rec, ok, err := a.d.Ledger.Lookup(ctx, k, id)
	if err != nil {
		a.log.Error("ledger lookup failed", "err", err)
		writeError(w, http.StatusInternalServerError, "ledger lookup failed: "+err.Error(), nil)
		return
	}
	st := deletionState{Kind: k, ID: id, IDType: string(id.Type()), State: StateUnknown}
	if ok {
		st.State, st.LogID, st.Code, st.Message, st.TaskID, st.Run, st.API = string(rec.State), rec.LogID, rec.Code, rec.Message, rec.TaskID, rec.Run, rec.API
		st.RequestedBy, st.Key, st.DeleteInUse = rec.RequestedBy, rec.Key, rec.DeleteInUse
		if !rec.At.IsZero() {
			st.At = &rec.At
		}
		if !rec.Verified.IsZero() {
			st.Verified = &rec.Verified
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// maxDryRun is the most IDs one dry run answers.
const maxDryRun = 10_000

// dryRunResponse is the 200 answer to a dry run.
type dryRunResponse struct {
	Kind    modelid.Kind   `json:"kind"`
	DryRun  bool           `json:"dry_run"`
	Answers []inuse.Answer `json:"answers"`
}

// dryRun answers per ID what a run would do now, enqueuing nothing.
func (a *API) dryRun(ctx context.Context, w http.ResponseWriter, req enqueue.Request) {
	if a.d.DryRun == nil {
		writeError(w, http.StatusNotImplemented, "dry runs are not available on this worker", nil)
		return
	}
	ids := modelid.Dedupe(req.IDs)
	if len(ids) > maxDryRun {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a dry run answers at most %d IDs; split the request", maxDryRun), nil)
		return
	}
	answers, err := a.d.DryRun(ctx, req.Kind, ids)
	if err != nil {
		a.log.Error("dry run failed", "kind", req.Kind, "ids", len(ids), "err", err)
		writeError(w, http.StatusServiceUnavailable, "dry run failed: "+err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, dryRunResponse{Kind: req.Kind, DryRun: true, Answers: answers})
}

// cancelResponse answers DELETE /v1/requests/{key}.
type cancelResponse struct {
	Key       string `json:"key"`
	Cancelled bool   `json:"cancelled"`
	// Already: the request had been cancelled before.
	Already bool   `json:"already,omitempty"`
	Message string `json:"message"`
	// Request is the request's status right after the cancel, when it is
	// recorded: IDs in a final state were sent (or settled) before it;
	// pending ones end cancelled when their batch comes up.
	Request *enqueue.RequestStatus `json:"request,omitempty"`
}

// cancelRequest cancels a request by its key: its IDs that no call has
// carried yet end cancelled when their batch comes up.
func (a *API) cancelRequest(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if key == "" || len(key) > maxKeyLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("key: want 1 to %d characters", maxKeyLen), nil)
		return
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	first, err := a.d.Ledger.CancelRequest(ctx, key, principal(r).Name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	a.log.Info("request cancelled", "key", key, "by", principal(r).Name, "already", !first)
	resp := cancelResponse{Key: key, Cancelled: true, Already: !first,
		Message: "IDs of this request that no call has carried yet are recorded cancelled when their batch comes up; IDs already sent keep their outcome"}
	if st, err := enqueue.ReadRequest(ctx, a.d.Redis, a.d.Ledger, key, 0); err == nil {
		resp.Request = &st
	}
	writeJSON(w, http.StatusOK, resp)
}
