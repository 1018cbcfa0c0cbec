// Package httpapi is qfpurge's authenticated HTTP API, served by the worker
// when --api-addr is set, for producers not written in Go:
//
//	POST /v1/deletions               enqueue deletions (202 with the producer's receipt)
//	GET  /v1/deletions/{id}          state of one ID: pending, deleted, presumed, dead or unknown
//	GET  /v1/deadletters             list dead letters, paged
//	POST /v1/deadletters/requeue     requeue dead letters (some, or all)
//	POST /v1/deadletters/purge       forget dead letters (some, or all) without requeuing
//	POST /v1/rules/{name}/preview    queue a preview of a rule of the worker's schedule
//	POST /v1/rules/{name}/run        queue a run of it now (optionally over its limit)
//	GET  /v1/runs                    list previews and runs, newest first
//	GET  /v1/runs/{id}               one run: its record, planned items and their outcomes
//
// Every route needs "Authorization: Bearer <token>" with one of the tokens
// of Config.Tokens; docs/openapi.yaml describes the routes and bodies.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/qfpurge/qfpurge/internal/authtoken"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/policy"
)

// TokensEnv is the environment variable the worker reads Config.Tokens from:
// comma-separated, so a new token can be added before the old one is dropped.
const TokensEnv = "QFPURGE_API_TOKENS"

// ErrNoTokens is returned by New when no token is configured: the API never
// runs without authentication.
var ErrNoTokens = errors.New("the HTTP API needs at least one bearer token: set " + TokensEnv + " (comma-separated, several allowed for rotation)")

// Config configures the API.
type Config struct {
	// Tokens are the accepted bearer tokens. Required: New fails without
	// one. Each must be at least authtoken.MinLen characters.
	Tokens []string
	// MaxBodyBytes limits request bodies; a larger body answers 413.
	// Defaults to 1 MiB.
	MaxBodyBytes int64
	// PendingTTL is how long the "pending" marker of an ID enqueued through
	// the API is kept (on top of any delay); keep it equal to the ledger's
	// TTL. Defaults to 30 days.
	PendingTTL time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.PendingTTL == 0 {
		c.PendingTTL = 30 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// CheckTokens reports why tokens cannot protect the API.
func CheckTokens(tokens []string) error {
	if err := authtoken.CheckTokens(tokens); err != nil {
		if errors.Is(err, authtoken.ErrNone) {
			return ErrNoTokens
		}
		return fmt.Errorf("%s: %w", TokensEnv, err)
	}
	return nil
}

func (c Config) validate() error {
	if err := CheckTokens(c.Tokens); err != nil {
		return err
	}
	if c.MaxBodyBytes < 1 {
		return fmt.Errorf("httpapi: MaxBodyBytes %d must be positive", c.MaxBodyBytes)
	}
	if c.PendingTTL < 0 {
		return fmt.Errorf("httpapi: PendingTTL %s must not be negative", c.PendingTTL)
	}
	return nil
}

// ParseTokens splits a QFPURGE_API_TOKENS value at commas, trimming spaces
// and dropping empty entries.
func ParseTokens(s string) []string { return authtoken.Split(s) }

// Enqueuer enqueues deletions; *enqueue.Producer is one.
type Enqueuer interface {
	Enqueue(ctx context.Context, r enqueue.Request) (enqueue.Receipt, error)
}

// Deps are what the API works on; all are required except Archive.
type Deps struct {
	Ledger      *ledger.Ledger
	DeadLetters *deadletter.Store
	Producer    Enqueuer
	// Archive, usually the worker's *asynq.Inspector, lets requeue and purge
	// delete archived tasks. Nil leaves them.
	Archive deadletter.Archive
	// Rules previews and runs rules on request; nil answers 404 there.
	Rules *Rules
	// Runs are the run records; nil answers 404 on the run routes.
	Runs *policy.Store
}

// API is the HTTP handler.
type API struct {
	cfg    Config
	d      Deps
	creds  *authtoken.Set
	mux    *http.ServeMux
	routes []string
	log    *slog.Logger
}

// New returns the API, or ErrNoTokens when cfg has no token.
func New(cfg Config, d Deps) (*API, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if d.Ledger == nil || d.DeadLetters == nil || d.Producer == nil {
		return nil, errors.New("httpapi: Deps.Ledger, DeadLetters and Producer are required")
	}
	a := &API{cfg: cfg, d: d, mux: http.NewServeMux(), log: cfg.Logger}
	a.creds = authtoken.NewSet(cfg.Tokens, "", "")
	a.handle("POST /v1/deletions", a.postDeletions)
	a.handle("GET /v1/deletions/{id}", a.getDeletion)
	a.handle("GET /v1/deadletters", a.listDeadLetters)
	a.handle("POST /v1/deadletters/requeue", a.requeue)
	a.handle("POST /v1/deadletters/purge", a.purge)
	a.handle("POST /v1/rules/{name}/preview", a.previewRule)
	a.handle("POST /v1/rules/{name}/run", a.runRule)
	a.handle("GET /v1/runs", a.listRuns)
	a.handle("GET /v1/runs/{id}", a.getRun)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path, nil)
	})
	return a, nil
}

func (a *API) handle(pattern string, h http.HandlerFunc) {
	a.routes = append(a.routes, pattern)
	a.mux.Handle(pattern, a.authenticated(h))
}

// Routes lists the registered patterns, e.g. "GET /v1/deletions/{id}".
func (a *API) Routes() []string { return append([]string(nil), a.routes...) }

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	a.mux.ServeHTTP(sw, r)
	// Method, path and status only: headers carry the token.
	a.log.Info("http request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
		"duration", time.Since(start), "remote", r.RemoteAddr)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// authenticated checks the bearer token in constant time (authtoken.Set).
func (a *API) authenticated(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := authtoken.Bearer(r); !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qfpurge"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token", nil)
			return
		}
		if !a.creds.Allows(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qfpurge", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid bearer token", nil)
			return
		}
		h(w, r)
	})
}

// errorBody is every error answer.
type errorBody struct {
	Error   string `json:"error"`
	Invalid any    `json:"invalid,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg string, invalid any) {
	writeJSON(w, status, errorBody{Error: msg, Invalid: invalid})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// decodeBody reads one JSON object into v, rejecting unknown fields,
// trailing data and bodies over the limit. It writes the error answer and
// returns false on failure.
func (a *API) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json", nil)
		return false
	}
	body := http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Exactly one object: anything after it is an error, and reading on
		// also refuses a body that only goes over the limit after the object.
		var extra json.RawMessage
		switch e := dec.Decode(&extra); {
		case errors.Is(e, io.EOF):
		case e == nil:
			err = errors.New("trailing data after the JSON object")
		default:
			err = e
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the %d-byte limit", mbe.Limit), nil)
			return false
		}
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error(), nil)
		return false
	}
	return true
}

// requestContext bounds Redis work of one request.
func requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 30*time.Second)
}
