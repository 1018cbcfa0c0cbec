// Package httpapi is qfpurge's authenticated HTTP API, served by the worker
// when --api-addr is set, for producers not written in Go:
//
//	POST /v1/deletions               enqueue deletions (202 with the producer's receipt)
//	GET  /v1/deletions/{id}          state of one ID: pending, deleted, presumed, protected, dead, cancelled, refused or unknown
//	DELETE /v1/deletions/{id}        cancel one ID wherever it waits (right cancel)
//	GET  /v1/events                  outcome events as server-sent events, resumable with Last-Event-ID
//	GET  /v1/requests/{key}          a request by its key (given or generated): who asked, when, its IDs counted by state
//	DELETE /v1/requests/{key}        cancel a request's IDs not sent yet (right cancel)
//	GET  /v1/deadletters             list dead letters, paged
//	POST /v1/deadletters/requeue     requeue dead letters (some, or all)
//	POST /v1/deadletters/purge       forget dead letters (some, or all) without requeuing
//	POST /v1/rules/{name}/preview    queue a preview of a rule of the worker's schedule
//	POST /v1/rules/{name}/run        queue a run of it now (optionally over its limit)
//	GET  /v1/runs                    list previews and runs, newest first
//	GET  /v1/runs/{id}               one run: its record, planned items and their outcomes
//
// Every route needs "Authorization: Bearer <token>" with a token of
// Config.Tokens (full rights) or of Config.TokensFile (its scope: the kinds
// it may delete, a daily quota of IDs, name globs and rights for the rule
// and dead-letter routes). docs/openapi.yaml describes the routes and bodies.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/qfpurge/qfpurge/internal/authtoken"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/inuse"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/tracing"
)

// TokensEnv is the environment variable the worker reads Config.Tokens from:
// comma-separated "name:token" entries, so a new token can be added before
// the old one is dropped.
const TokensEnv = "QFPURGE_API_TOKENS"

// TokensFileEnv is the environment variable the worker reads
// Config.TokensFile from (flag --api-tokens-file).
const TokensFileEnv = "QFPURGE_API_TOKENS_FILE"

// ErrNoTokens is returned by New when no token is configured: the API never
// runs without authentication.
var ErrNoTokens = errors.New("the HTTP API needs at least one bearer token: set " + TokensEnv +
	" (name:token, comma-separated, several allowed for rotation) or " + TokensFileEnv + " (--api-tokens-file)")

// Config configures the API.
type Config struct {
	// Tokens are the entries of QFPURGE_API_TOKENS: "name:token", or a bare
	// token, named by its position (token-1, ...). They have full rights.
	// Each token must be at least authtoken.MinLen characters. Tokens or
	// TokensFile is required, not both.
	Tokens []string
	// TokensFile is a tokens file (authtoken.ParseFile): named tokens, held
	// as SHA-256 hashes, each with its scope. Read once, by New.
	TokensFile string
	// MaxBodyBytes limits request bodies; a larger body answers 413.
	// Defaults to 1 MiB.
	MaxBodyBytes int64
	// PendingTTL is how long the "pending" marker of an ID enqueued through
	// the API is kept (on top of any delay); keep it equal to the ledger's
	// TTL. Defaults to 30 days.
	PendingTTL time.Duration
	// Now is the clock: deletion times and the quota's day. Defaults to
	// time.Now.
	Now func() time.Time
	// Events configures GET /v1/events.
	Events EventsConfig
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// TracerProvider, when set, traces every request as a server span,
	// continuing a W3C traceparent header; the deletions it enqueues carry
	// that span's context to the workers. Nil traces nothing and reads no
	// trace header.
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.PendingTTL == 0 {
		c.PendingTTL = 30 * 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Events = c.Events.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// LoadTokens reads the tokens of env (QFPURGE_API_TOKENS's entries) or of
// file, not both. unnamed counts the env tokens given without a name.
func LoadTokens(env []string, file string) (reg *authtoken.Registry, unnamed int, err error) {
	var tokens []authtoken.Named
	switch {
	case len(env) > 0 && file != "":
		return nil, 0, errors.New("set " + TokensEnv + " or " + TokensFileEnv + " (--api-tokens-file), not both: " +
			"tokens of the environment would have full rights beside the file's scoped ones")
	case file != "":
		if tokens, err = authtoken.LoadFile(file); err != nil {
			return nil, 0, err
		}
	default:
		if tokens, unnamed, err = authtoken.ParseEnv(env); err != nil {
			if errors.Is(err, authtoken.ErrNone) {
				return nil, 0, ErrNoTokens
			}
			return nil, 0, fmt.Errorf("%s: %w", TokensEnv, err)
		}
	}
	reg, err = authtoken.NewRegistry(tokens)
	if err != nil && file == "" {
		err = fmt.Errorf("%s: %w", TokensEnv, err)
	}
	return reg, unnamed, err
}

// CheckTokens reports why the tokens of env or file cannot protect the API.
func CheckTokens(env []string, file string) error {
	_, _, err := LoadTokens(env, file)
	return err
}

func (c Config) validate() error {
	if c.MaxBodyBytes < 1 {
		return fmt.Errorf("httpapi: MaxBodyBytes %d must be positive", c.MaxBodyBytes)
	}
	if c.PendingTTL < 0 {
		return fmt.Errorf("httpapi: PendingTTL %s must not be negative", c.PendingTTL)
	}
	return c.Events.validate()
}

// ParseTokens splits a QFPURGE_API_TOKENS value at commas, trimming spaces
// and dropping empty entries.
func ParseTokens(s string) []string { return authtoken.Split(s) }

// Enqueuer enqueues deletions; *enqueue.Producer is one.
type Enqueuer interface {
	Enqueue(ctx context.Context, r enqueue.Request) (enqueue.Receipt, error)
}

// Deps are what the API works on; all are required except Archive, Rules,
// Runs and Attribute.
type Deps struct {
	// Redis holds the quotas' counts and the event stream.
	Redis       redis.UniversalClient
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
	// Attribute writes who asked onto a request before it is enqueued: the
	// token's name (requested_by) and its name globs, which workers check
	// before each call. Nil drops both.
	Attribute func(r *enqueue.Request, requestedBy string, nameScope []string)
	// DryRun answers a dry run from the fleet's in-use view and listings,
	// deleting nothing; nil answers dry runs with 501.
	DryRun func(ctx context.Context, k modelid.Kind, ids []modelid.ID) ([]inuse.Answer, error)
}

// API is the HTTP handler.
type API struct {
	cfg     Config
	d       Deps
	tokens  *authtoken.Registry
	closing chan struct{}
	once    sync.Once
	streams chan struct{} // a slot per open event stream
	mux     *http.ServeMux
	probe   *http.ServeMux // the routes alone, to tell 405 from 404
	handler http.Handler
	routes  []string
	log     *slog.Logger
	tr      trace.Tracer // nil: no spans
}

// New returns the API, or ErrNoTokens when cfg has no token.
func New(cfg Config, d Deps) (*API, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if d.Redis == nil || d.Ledger == nil || d.DeadLetters == nil || d.Producer == nil {
		return nil, errors.New("httpapi: Deps.Redis, Ledger, DeadLetters and Producer are required")
	}
	reg, unnamed, err := LoadTokens(cfg.Tokens, cfg.TokensFile)
	if err != nil {
		return nil, err
	}
	if unnamed > 0 {
		cfg.Logger.Warn("API tokens without a name are named by their position in "+TokensEnv+
			" (token-1, token-2, ...), which changes when the list does: write them as name:token", "unnamed", unnamed)
	}
	a := &API{cfg: cfg, d: d, mux: http.NewServeMux(), probe: http.NewServeMux(), log: cfg.Logger, tokens: reg,
		closing: make(chan struct{}), streams: make(chan struct{}, cfg.Events.MaxStreams)}
	if cfg.TracerProvider != nil {
		a.tr = tracing.Tracer(cfg.TracerProvider)
	}
	a.handle("POST /v1/deletions", a.postDeletions, "")
	a.handle("GET /v1/deletions/{id}", a.getDeletion, "")
	a.handle("GET /v1/events", a.events, "")
	a.handle("DELETE /v1/deletions/{id}", a.cancelDeletion, authtoken.RightCancel)
	a.handle("GET /v1/requests/{key}", a.getRequest, "")
	a.handle("DELETE /v1/requests/{key}", a.cancelRequest, authtoken.RightCancel)
	a.handle("GET /v1/deadletters", a.listDeadLetters, "")
	a.handle("POST /v1/deadletters/requeue", a.requeue, authtoken.RightDeadLetters)
	a.handle("POST /v1/deadletters/purge", a.purge, authtoken.RightDeadLetters)
	a.handle("POST /v1/rules/{name}/preview", a.previewRule, authtoken.RightRules)
	a.handle("POST /v1/rules/{name}/run", a.runRule, authtoken.RightRules)
	a.handle("GET /v1/runs", a.listRuns, "")
	a.handle("GET /v1/runs/{id}", a.getRun, "")
	a.mux.HandleFunc("/", a.noRoute)
	// Bearer tokens are not sent by browsers on their own, so this is belt
	// and braces: no web page can drive the API from another origin.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused", nil)
	}))
	a.handler = cop.Handler(a.mux)
	return a, nil
}

// handle registers a route; need, when set, is the right a token must hold.
func (a *API) handle(pattern string, h http.HandlerFunc, need authtoken.Right) {
	a.routes = append(a.routes, pattern)
	a.mux.Handle(pattern, a.authenticated(h, need))
	a.probe.Handle(pattern, http.NotFoundHandler())
}

// noRoute answers 405 with Allow for a known path asked with another
// method, 404 otherwise.
func (a *API) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		if _, pattern := a.probe.Handler(&http.Request{Method: m, URL: r.URL, Host: r.Host}); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path, nil)
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+strings.Join(allow, ", "), nil)
}

// TokenNames lists the names of the accepted tokens.
func (a *API) TokenNames() []string { return a.tokens.Names() }

// Close ends the open event streams (their clients may resume with
// Last-Event-ID); http.Server.Shutdown does not end running handlers. Give
// it to the server's RegisterOnShutdown.
func (a *API) Close() { a.once.Do(func() { close(a.closing) }) }

// Routes lists the registered patterns, e.g. "GET /v1/deletions/{id}".
func (a *API) Routes() []string { return append([]string(nil), a.routes...) }

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	r, span := a.startSpan(r)
	a.handler.ServeHTTP(sw, r)
	endSpan(span, r, sw)
	// Method, path and status only: headers carry the token.
	a.log.Info("http request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
		"duration", time.Since(start), "remote", r.RemoteAddr, "token", sw.token)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	token  string // the authenticated token's name
}

// Unwrap lets http.ResponseController reach the connection (event streams
// flush and move their deadlines).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// authenticated checks the bearer token in constant time
// (authtoken.Registry), puts its principal in the request's context, and
// refuses a token without the right need.
func (a *API) authenticated(h http.HandlerFunc, need authtoken.Right) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := authtoken.Bearer(r); !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qfpurge"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token", nil)
			return
		}
		p, ok := a.tokens.Authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qfpurge", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid bearer token", nil)
			return
		}
		if sw, ok := w.(*statusWriter); ok {
			sw.token = p.Name
		}
		if need != "" && !p.Scope.Allows(need) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %q may not do this: its entry in the tokens file needs may: [%s]", p.Name, need), nil)
			return
		}
		h(w, r.WithContext(authtoken.WithPrincipal(r.Context(), p)))
	})
}

// principal is the authenticated caller of r.
func principal(r *http.Request) authtoken.Principal {
	p, _ := authtoken.PrincipalFrom(r.Context())
	return p
}

// attribute writes p onto req through Deps.Attribute.
func (a *API) attribute(req *enqueue.Request, p authtoken.Principal) {
	if a.d.Attribute != nil {
		a.d.Attribute(req, p.Name, p.Scope.Names)
	}
}

// errorBody is every error answer.
type errorBody struct {
	Error   string `json:"error"`
	Invalid any    `json:"invalid,omitempty"`
}

// writeError answers msg; invalid, when it holds anything, lists what was
// refused.
func writeError(w http.ResponseWriter, status int, msg string, invalid any) {
	switch v := invalid.(type) {
	case []modelid.InvalidID:
		if len(v) == 0 {
			invalid = nil
		}
	case []string:
		if len(v) == 0 {
			invalid = nil
		}
	}
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

// decodeBody reads one JSON object into v (a pointer to a struct), refusing
// another media type, unknown fields, fields named in another case or given
// twice (encoding/json would take either silently), trailing data and bodies
// over the limit. It writes the error answer and returns false on failure.
func (a *API) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json", nil)
			return false
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the %d-byte limit", mbe.Limit), nil)
			return false
		}
		writeError(w, http.StatusBadRequest, "cannot read the body: "+err.Error(), nil)
		return false
	}
	if err := checkKeys(data, v); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error(), nil)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
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
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error(), nil)
		return false
	}
	return true
}

// checkKeys refuses top-level keys of data that are not v's fields exactly:
// encoding/json matches names without regard to case and keeps the last of
// a repeated key. Syntax errors are left to the decoder, which says more.
func checkKeys(data []byte, v any) error {
	fields := jsonFields(reflect.TypeOf(v).Elem())
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("field %q given twice", key)
		}
		seen[key] = true
		if !fields[key] {
			for f := range fields {
				if strings.EqualFold(f, key) {
					return fmt.Errorf("unknown field %q: field names are case-sensitive (%q)", key, f)
				}
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// jsonFields lists a struct's JSON field names, embedded structs included.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			maps.Copy(out, jsonFields(f.Type))
		case name != "":
			out[name] = true
		case f.IsExported():
			out[f.Name] = true
		}
	}
	return out
}

// requestContext bounds Redis work of one request.
func requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 30*time.Second)
}
