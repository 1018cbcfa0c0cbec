package qianfan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/qfpurge/qfpurge/internal/retry"
)

// Endpoint paths. V1 paths are whole operations; a V2 path serves many
// operations, chosen by the Action query parameter (see the Action* names).
const (
	PathBatchDeleteModels        = "/wenxinworkshop/modelrepo/model/batchDelete"
	PathBatchDeleteModelVersions = "/wenxinworkshop/modelrepo/model/version/batchDelete"
	PathModelList                = "/wenxinworkshop/modelrepo/model/user/list"
	PathModelDetail              = "/wenxinworkshop/modelrepo/modelDetail"
	PathModelVersionDetail       = "/wenxinworkshop/modelrepo/modelVersionDetail"
	PathServiceList              = "/wenxinworkshop/service/list"

	PathV2Model          = "/v2/model"
	PathV2Service        = "/v2/service"
	PathV2BatchInference = "/v2/batchinference"
)

// V2 actions (the Action query parameter, part of the signature).
const (
	ActionDescribeCustomModelSets = "DescribeCustomModelSets" // on PathV2Model
	ActionDescribeModelSet        = "DescribeModelSet"        // on PathV2Model
	ActionDescribeModel           = "DescribeModel"           // on PathV2Model
	ActionDeleteModelSet          = "DeleteModelSet"          // on PathV2Model
	ActionDeleteModel             = "DeleteModel"             // on PathV2Model
	ActionDescribeServices        = "DescribeServices"        // on PathV2Service
	ActionDescribeService         = "DescribeService"         // on PathV2Service

	ActionDescribeBatchInferenceTasks = "DescribeBatchInferenceTasks" // on PathV2BatchInference
)

// endpoint is one API operation.
type endpoint struct {
	path   string
	action string // V2 only
	// write: the call changes state, so a lost answer makes it ambiguous.
	write bool
}

func (ep endpoint) String() string {
	if ep.action == "" {
		return ep.path
	}
	return ep.path + "?Action=" + ep.action
}

var (
	epBatchDeleteModels        = endpoint{path: PathBatchDeleteModels, write: true}
	epBatchDeleteModelVersions = endpoint{path: PathBatchDeleteModelVersions, write: true}
	epModelList                = endpoint{path: PathModelList}
	epModelDetail              = endpoint{path: PathModelDetail}
	epModelVersionDetail       = endpoint{path: PathModelVersionDetail}
	epServiceList              = endpoint{path: PathServiceList}
	epDescribeCustomModelSets  = endpoint{path: PathV2Model, action: ActionDescribeCustomModelSets}
	epDescribeModelSet         = endpoint{path: PathV2Model, action: ActionDescribeModelSet}
	epDescribeModel            = endpoint{path: PathV2Model, action: ActionDescribeModel}
	epDeleteModelSet           = endpoint{path: PathV2Model, action: ActionDeleteModelSet, write: true}
	epDeleteModel              = endpoint{path: PathV2Model, action: ActionDeleteModel, write: true}
	epDescribeServices         = endpoint{path: PathV2Service, action: ActionDescribeServices}
	epDescribeService          = endpoint{path: PathV2Service, action: ActionDescribeService}
	epDescribeBatchTasks       = endpoint{path: PathV2BatchInference, action: ActionDescribeBatchInferenceTasks}
)

// DefaultBaseURL is Qianfan's public endpoint.
const DefaultBaseURL = "https://qianfan.baidubce.com"

// IDs is a list of model IDs of one type. It is sealed: only IntIDs and
// StringIDs implement it, so one list cannot mix ints and strings.
type IDs interface {
	Len() int
	isIDs()
}

// IntIDs are numeric model IDs; they marshal as JSON numbers.
type IntIDs []int64

// StringIDs are string model IDs (e.g. "am-xxx"); they marshal as JSON strings.
type StringIDs []string

// Len returns the number of IDs.
func (ids IntIDs) Len() int { return len(ids) }
func (IntIDs) isIDs()       {}

// Len returns the number of IDs.
func (ids StringIDs) Len() int { return len(ids) }
func (StringIDs) isIDs()       {}

// Credentials are an IAM access key pair. String, GoString and LogValue
// mask the secret so it cannot leak through fmt or slog.
type Credentials struct {
	AccessKey string
	SecretKey string
}

func (c Credentials) masked() string {
	sk := ""
	if c.SecretKey != "" {
		sk = "****"
	}
	return "{AccessKey:" + c.AccessKey + " SecretKey:" + sk + "}"
}

// String masks the secret key.
func (c Credentials) String() string { return c.masked() }

// GoString masks the secret key for %#v.
func (c Credentials) GoString() string { return "qianfan.Credentials" + c.masked() }

// LogValue masks the secret key in slog output.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key", c.AccessKey), slog.String("secret_key", "****"))
}

// Limiter paces calls; *rate.Limiter satisfies it.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Option configures a Client.
type Option func(*Client)

// WithBaseURL sets the API root. Defaults to DefaultBaseURL.
func WithBaseURL(u string) Option { return func(c *Client) { c.baseURL = u } }

// WithHTTPClient sets the HTTP client. Defaults to a new http.Client with no
// overall timeout (each attempt has its own, see WithAttemptTimeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithAttemptTimeout bounds one HTTP attempt, body read included. Defaults to 30s.
func WithAttemptTimeout(d time.Duration) Option { return func(c *Client) { c.attemptTimeout = d } }

// WithMaxElapsed bounds the time one call spends retrying; a wait that would
// cross it is not started and the last error is returned. 0 disables
// retries (one attempt). Defaults to 2m, well under an asynq task timeout.
func WithMaxElapsed(d time.Duration) Option {
	return func(c *Client) { c.maxElapsed = d; c.maxElapsedSet = true }
}

// WithRetryInterval sets the first and the largest wait between attempts
// after a transient error, keeping the rest of the policy; throttled errors
// wait ThrottleFactor times longer. Defaults to 300ms and 10s (retry.Calls).
func WithRetryInterval(initial, max time.Duration) Option {
	return func(c *Client) { c.policy.Initial, c.policy.Max = initial, max }
}

// WithRetryPolicy sets the waits between attempts after a transient error;
// throttled errors wait ThrottleFactor times longer. Defaults to retry.Calls().
func WithRetryPolicy(p retry.Policy) Option { return func(c *Client) { c.policy = p } }

// ThrottleFactor is how much longer the client waits after a throttled answer
// than after a transient one.
const ThrottleFactor = 4

// WithQPS caps this process's attempts per second with a token bucket.
// qps <= 0 turns it off (the default); burst < 1 is taken as 1.
func WithQPS(qps float64, burst int) Option {
	return func(c *Client) {
		if qps <= 0 {
			c.qps = nil
			return
		}
		c.qps = rate.NewLimiter(rate.Limit(qps), max(burst, 1))
	}
}

// WithLimiter adds a limiter waited on before every attempt, after the QPS
// cap (e.g. a fleet-wide budget). May be given more than once.
func WithLimiter(l Limiter) Option {
	return func(c *Client) {
		if l != nil {
			c.limiters = append(c.limiters, l)
		}
	}
}

// WithReadKey makes a read-only key pair sign every read (listings and
// describe calls), each waiting on limiters (the read pair's own budget)
// instead of WithLimiter's; the client's own key pair then signs only
// deletions. With a read pair, New accepts empty main credentials: such a
// client reads and refuses every deletion before any call (ErrNoDeleteKey),
// so a preview built on it cannot delete.
func WithReadKey(creds Credentials, limiters ...Limiter) Option {
	return func(c *Client) {
		c.read = &creds
		c.readLimiters = nil
		for _, l := range limiters {
			if l != nil {
				c.readLimiters = append(c.readLimiters, l)
			}
		}
	}
}

// ErrNoDeleteKey is returned, before any HTTP call, by a deletion on a
// client that holds only a read-only key pair.
var ErrNoDeleteKey = errors.New("qianfan: this client holds only the read-only key pair; deleting needs QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY")

// WithLogger sets the logger. Defaults to discarding logs.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithClock sets the time source used for signing. Defaults to time.Now.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithExpireSeconds sets how long each signature is valid. Defaults to
// DefaultExpireSeconds.
func WithExpireSeconds(s int) Option { return func(c *Client) { c.expireSeconds = s } }

// Client calls Qianfan's model-management endpoints, V1 and V2. It is safe
// for concurrent use.
type Client struct {
	creds          Credentials
	baseURL        string
	base           *url.URL
	hc             *http.Client
	attemptTimeout time.Duration
	maxElapsed     time.Duration
	maxElapsedSet  bool
	policy         retry.Policy
	qps            *rate.Limiter
	limiters       []Limiter
	read           *Credentials // signs reads when set (WithReadKey)
	readLimiters   []Limiter
	log            *slog.Logger
	now            func() time.Time
	expireSeconds  int
	tr             trace.Tracer // nil: no spans
}

// New returns a Client. It fails on an empty access or secret key or a bad base URL.
func New(creds Credentials, opts ...Option) (*Client, error) {
	c := &Client{
		creds:          creds,
		baseURL:        DefaultBaseURL,
		attemptTimeout: 30 * time.Second,
		policy:         retry.Calls(),
		expireSeconds:  DefaultExpireSeconds,
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.read != nil && (c.read.AccessKey == "" || c.read.SecretKey == ""):
		return nil, errors.New("qianfan: the read-only pair needs both its access key and its secret key")
	case c.read == nil && (creds.AccessKey == "" || creds.SecretKey == ""):
		return nil, errors.New("qianfan: access key and secret key are required")
	case c.read != nil && (creds.AccessKey == "") != (creds.SecretKey == ""):
		return nil, errors.New("qianfan: the access key and the secret key go together")
	case c.read != nil && creds.AccessKey != "" && creds.AccessKey == c.read.AccessKey:
		// One key cannot be both: least privilege needs two.
		return nil, errors.New("qianfan: the read-only pair must be another access key than the one that deletes")
	}
	if !c.maxElapsedSet {
		c.maxElapsed = 2 * time.Minute
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.policy.Initial <= 0 {
		c.policy.Initial = retry.Calls().Initial
	}
	c.policy.Max = max(c.policy.Max, c.policy.Initial)
	if err := c.policy.Validate(); err != nil {
		return nil, fmt.Errorf("qianfan: %w", err)
	}
	// The URL is echoed only once it is known to hold no user info: a
	// secret pasted there must not reach an error or a log.
	u, err := url.Parse(c.baseURL)
	switch {
	case err != nil:
		return nil, errors.New("qianfan: the base URL cannot be parsed (not shown, it may hold a secret): want https://host[:port]")
	case u.User != nil:
		return nil, errors.New("qianfan: the base URL must not hold user info (user:password@): requests are signed with the access and secret keys")
	case u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return nil, fmt.Errorf("qianfan: bad base URL %q: want https://host[:port]", u.Redacted())
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c.base = u
	silenceBCELog()
	return c, nil
}

// Result describes a successful call.
type Result struct {
	LogID    string // Baidu's log_id; keep it with the outcome, support asks for it
	Attempts int    // HTTP attempts made by this call
	// Ambiguous: an earlier attempt of this call may have been applied by the
	// server but its answer was lost (the request was sent, then the
	// connection broke or timed out). Dial errors are not ambiguous.
	Ambiguous bool
}

// BatchDeleteModels deletes models by ID in one request; the server rejects
// the whole batch if any ID is bad (500001).
// API: https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Dlmxf2u4b
func (c *Client) BatchDeleteModels(ctx context.Context, ids IDs) (Result, error) {
	if ids == nil || ids.Len() == 0 {
		return Result{}, ErrNoIDs
	}
	return c.call(ctx, epBatchDeleteModels, map[string]IDs{"modelIDs": ids}, nil)
}

// BatchDeleteModelVersions deletes model versions by ID in one request.
// API: https://cloud.baidu.com/doc/WENXINWORKSHOP/s/ylmxf3xb0
func (c *Client) BatchDeleteModelVersions(ctx context.Context, ids IDs) (Result, error) {
	if ids == nil || ids.Len() == 0 {
		return Result{}, ErrNoIDs
	}
	return c.call(ctx, epBatchDeleteModelVersions, map[string]IDs{"modelVersionIds": ids}, nil)
}

// DeleteModelSet deletes one model ("model set" in V2, an am- ID) with its
// versions, through V2. V2 takes one ID per call and, as far as anyone
// documents, only the string form.
// API: https://cloud.baidu.com/doc/WENXINWORKSHOP/s/Ylxefbkb6
func (c *Client) DeleteModelSet(ctx context.Context, modelSetID string) (Result, error) {
	if modelSetID == "" {
		return Result{}, ErrNoIDs
	}
	return c.call(ctx, epDeleteModelSet, map[string]string{"modelSetId": modelSetID}, nil)
}

// DeleteModel deletes one model version (an amv- ID) through V2.
// API: https://cloud.baidu.com/doc/WENXINWORKSHOP/s/hlxeg1tee
func (c *Client) DeleteModel(ctx context.Context, modelID string) (Result, error) {
	if modelID == "" {
		return Result{}, ErrNoIDs
	}
	return c.call(ctx, epDeleteModel, map[string]string{"modelId": modelID}, nil)
}

// call is the one path every endpoint takes: it runs signed attempts until
// success, a non-retryable error, a done ctx or the MaxElapsed budget. On
// success the answer's result is decoded into out (when out is not nil).
func (c *Client) call(ctx context.Context, ep endpoint, reqBody, out any) (Result, error) {
	if ep.write && c.creds.AccessKey == "" {
		return Result{}, ErrNoDeleteKey
	}
	body, err := json.Marshal(reqBody)
	if err != nil {
		return Result{}, fmt.Errorf("qianfan: encoding request: %w", err)
	}
	log := c.log.With("endpoint", ep.String())
	nIDs := 0
	if ids, ok := reqBody.(map[string]IDs); ok {
		for _, v := range ids {
			log = log.With("batch_size", v.Len())
			nIDs = v.Len()
		}
	}
	start := time.Now()
	transient := c.policy.NewBackOff()
	throttled := c.policy.Scaled(ThrottleFactor).NewBackOff()
	var attempts int
	var ambiguous bool
	fail := func(e *Error) (Result, error) {
		e.Attempts, e.Ambiguous, e.Endpoint = attempts, ambiguous, ep.String()
		e.ReadKey = c.readKey(ep)
		return Result{Attempts: attempts, Ambiguous: ambiguous}, e
	}
	for {
		if ctx.Err() != nil {
			return fail(newTransportError(ctx, ctx.Err()))
		}
		if err := c.waitLimiters(ctx, ep); err != nil {
			return fail(newTransportError(ctx, err))
		}
		attempts++
		actx, span := c.startAttempt(ctx, ep, attempts, nIDs)
		logID, e, sent := c.attempt(actx, ep, body, out)
		endAttempt(span, ep, logID, e, sent)
		if e == nil {
			log.Debug("qianfan call ok", "log_id", logID, "attempts", attempts)
			return Result{LogID: logID, Attempts: attempts, Ambiguous: ambiguous}, nil
		}
		// A sent write without a readable answer may have been applied.
		if ep.write && ((sent && e.HTTPStatus == 0) || e.unparsed) {
			ambiguous = true
		}
		if ctx.Err() != nil {
			return fail(newTransportError(ctx, ctx.Err()))
		}
		class := e.class()
		var wait time.Duration
		switch {
		case class == ClassTransient:
			wait = transient.NextBackOff()
		case class == ClassThrottled && e.Code != codeDailyLimit:
			wait = throttled.NextBackOff()
		default:
			log.Debug("qianfan call failed", "class", class, "code", e.code(), "log_id", e.LogID, "attempts", attempts)
			return fail(e)
		}
		wait = max(wait, e.RetryAfter)
		if c.maxElapsed <= 0 || time.Since(start)+wait > c.maxElapsed {
			log.Warn("qianfan retry budget spent", "class", class, "code", e.code(), "log_id", e.LogID, "attempts", attempts)
			return fail(e)
		}
		log.Info("qianfan retrying", "class", class, "code", e.code(), "http_status", e.HTTPStatus,
			"log_id", e.LogID, "attempts", attempts, "wait", wait, "ambiguous", ambiguous)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fail(newTransportError(ctx, ctx.Err()))
		case <-t.C:
		}
	}
}

// readKey reports whether the read-only pair signs ep.
func (c *Client) readKey(ep endpoint) bool { return c.read != nil && !ep.write }

// HasReadKey reports whether a read-only pair signs this client's reads.
func (c *Client) HasReadKey() bool { return c.read != nil }

func (c *Client) waitLimiters(ctx context.Context, ep endpoint) error {
	if c.qps != nil {
		if err := c.qps.Wait(ctx); err != nil {
			return err
		}
	}
	limiters := c.limiters
	if c.readKey(ep) {
		// The read pair's own budget: reads never spend the deletions'.
		limiters = c.readLimiters
	}
	for _, l := range limiters {
		if err := l.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// attempt makes one signed HTTP request. sent reports whether the request
// was fully written, which makes a later transport error ambiguous.
func (c *Client) attempt(ctx context.Context, ep endpoint, body []byte, out any) (logID string, e *Error, sent bool) {
	actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) { wrote.Store(i.Err == nil) },
	})
	u := *c.base
	u.Path += ep.path
	var params map[string]string
	if ep.action != "" {
		// The query is part of the canonical request: sign exactly what is sent.
		params = map[string]string{"Action": ep.action}
		u.RawQuery = url.Values{"Action": {ep.action}}.Encode()
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return "", &Error{Err: err, Message: err.Error()}, false
	}
	date := c.now().UTC().Truncate(time.Second)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Bce-Date", date.Format(time.RFC3339))
	creds := c.creds
	if c.readKey(ep) {
		creds = *c.read
	}
	req.Header.Set("Authorization", signRequest(creds, http.MethodPost, u.Path, params, map[string]string{
		"host":         req.Host,
		"content-type": "application/json",
		"x-bce-date":   date.Format(time.RFC3339),
	}, signedHeaders, date, c.expireSeconds))
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", newTransportError(ctx, err), wrote.Load()
	}
	defer resp.Body.Close()
	traceStatus(ctx, resp.StatusCode)
	logID, e = newResponseError(resp, out)
	if e != nil && ep.action == "" && e.Code == 0 && e.ErrorCode == "" && isGoneStatus(e.HTTPStatus) {
		// A V1 path is one operation: a "not found" for it that carries no
		// answer of the operation's own (only a gateway's header, or
		// nothing) is a route that no longer exists, whatever the gateway
		// calls it.
		e.routeGone = true
	}
	return logID, e, wrote.Load()
}
