package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/httpapi"
	"github.com/qfpurge/qfpurge/internal/maintenance"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// Config is everything a worker runs with. Zero fields take the defaults
// noted on each; Validate names every field that is wrong.
type Config struct {
	// AccessKey and SecretKey are the Qianfan credentials. Required. The
	// secret never reaches logs, Redis or errors.
	AccessKey string
	SecretKey string
	// ReadAccessKey and ReadSecretKey are an optional read-only pair (an
	// IAM policy that lists but cannot delete): when set it signs every
	// read (listings, in-use views, detail reads, verification, rule plans,
	// dry runs) and the pair above signs only deletions. Both or neither.
	ReadAccessKey string
	ReadSecretKey string
	// ReadQPS is the read pair's own budget across the fleet, per base URL
	// and read access key. Defaults to QPS (Baidu's SDK limits per
	// credential; Baidu documents no console-API limit). Unused without a
	// read pair.
	ReadQPS float64
	// BaseURL is Qianfan's API root. Defaults to qianfan.DefaultBaseURL.
	BaseURL string
	// QPS is the most API calls per second across every worker sharing the
	// Redis, per base URL and access key. Defaults to 0: no cap (cmd/worker's
	// --qps defaults to 10).
	QPS float64
	// QianfanAPI is the API to delete through: fleet.V1, V2 or Auto (V1
	// until it is gone, then V2 for the fleet). Defaults to Auto.
	QianfanAPI fleet.APIMode
	// InventoryEvery, when positive, lists the whole account (V1 and V2)
	// this often, one worker at a time, so int↔string pairs are known before
	// V2 needs them. Defaults to 0: only lost answers and rules list.
	InventoryEvery time.Duration
	// InventoryVersions makes each refresh read every model's V1 detail too
	// (one call per model), the only source of version int IDs' string forms.
	InventoryVersions bool
	// QianfanOptions are extra client options (tests: fast retries).
	QianfanOptions []qianfan.Option

	// Concurrency is how many batches one worker processes at once.
	// Defaults to 10.
	Concurrency int
	// BatchSize is the most IDs per call. Defaults to tasks.DefaultBatchSize.
	BatchSize int
	// BatchWait is Asynq's group grace period: a group is batched once no
	// job arrived for this long (whole seconds, at least 1s). Defaults to 2s.
	BatchWait time.Duration
	// BatchMaxWait is the longest a job waits in its group; negative means
	// no limit (Asynq's default). Defaults to 10s.
	BatchMaxWait time.Duration
	// GroupMaxSize is the most jobs merged from one group per aggregation
	// tick; negative means no limit (Asynq's default). Defaults to
	// 10 × BatchSize.
	GroupMaxSize int
	// MaxRetry counts failed attempts before a batch is dead-lettered
	// (throttling does not count). Defaults to 12.
	MaxRetry int
	// Retention keeps completed batches visible in the monitor. Defaults to
	// 7 days.
	Retention time.Duration
	// LedgerTTL is how long each ID's outcome is remembered. Defaults to 30 days.
	LedgerTTL time.Duration
	// EventsMaxLen caps the event stream approximately; negative for none.
	// Defaults to 100,000.
	EventsMaxLen int64
	// VerifyWait is the longest a batch rejected after a lost answer waits
	// for the queue to go quiet before a listing is taken anyway (see
	// inventory.Verifier). Defaults to 2 minutes.
	VerifyWait time.Duration
	// InUseMaxAge is the oldest in-use view (services of both protocol
	// versions, batch inference tasks) a batch is checked against right
	// before its call. Defaults to 2s: older trades read calls for the risk
	// that a service deployed meanwhile is not seen.
	InUseMaxAge time.Duration
	// Grace is the fleet's least delay between any request and its first
	// call, during which it can be cancelled (requests may ask for longer,
	// never shorter). Written to Redis at start, where every producer reads
	// it. Defaults to 0.
	Grace time.Duration
	// PauseProbe is how often a paused fleet's credentials are read again
	// (see fleet.Prober). Defaults to 30s.
	PauseProbe time.Duration
	// SkipPreflight skips the signed read call Start makes to check the
	// credentials (the demo's fake needs none).
	SkipPreflight bool
	// ShutdownTimeout is how long running batches may finish on Shutdown.
	// Defaults to 30s.
	ShutdownTimeout time.Duration
	// SweepInterval is how often stranded Asynq groups and batches Asynq
	// archived on its own are looked for. Defaults to 30s.
	SweepInterval time.Duration

	// Monitor is the operator listener (asynqmon, metrics, health).
	Monitor MonitorConfig
	// API is the HTTP enqueue API; off unless API.Addr is set.
	API APIConfig

	// EmbeddedRedis says the worker runs on an in-memory Redis of its own
	// (--embedded-redis): a start-up warning, unless Demo. Demo says it runs
	// the demo (--demo), where no start-up warning applies.
	EmbeddedRedis bool
	Demo          bool

	// Schedule is a schedule file (see package schedule); off when empty.
	Schedule string
	// ScheduleSync is how often Schedule is read again. Defaults to 30s.
	ScheduleSync time.Duration

	// OTLPEndpoint turns tracing on (package tracing): the collector's
	// OTLP/HTTP base URL, as OTEL_EXPORTER_OTLP_ENDPOINT, which it wins
	// over. Empty leaves it to the OTEL_* environment; with neither, tracing
	// is off.
	OTLPEndpoint string
	// TracerProvider, when set, is traced to instead (tests); the caller
	// shuts it down.
	TracerProvider trace.TracerProvider

	// Logger defaults to slog.Default(); LogLevel is what Asynq's own logs
	// are filtered at. Defaults to info.
	Logger   *slog.Logger
	LogLevel slog.Level

	// Clock is the time the worker's decisions read (fleet membership,
	// quiet queue, the prober's and the refresh's timing). Defaults to the
	// wall clock.
	Clock fleet.Clock
	// Ticker paces the background services (sweeper, verifier, refresh,
	// prober, heartbeat). Defaults to maintenance.SystemTicker; tests tick
	// by hand.
	Ticker maintenance.NewTicker
}

// MonitorConfig configures the monitor listener.
type MonitorConfig struct {
	// Addr is host:port; empty turns the monitor off.
	Addr string
	// ReadOnly hides asynqmon's buttons that change tasks and queues.
	ReadOnly bool
	// Token, or User and Password, are required beyond loopback.
	Token, User, Password string
	// Hosts are further names the monitor answers to (see monitor.Config).
	Hosts []string
	// Explicit says Addr was chosen by the operator: then a taken port stops
	// the worker; the default address only warns, so a second worker on the
	// same host still starts.
	Explicit bool
}

// LogValue shows which credentials are set, never their values.
func (m MonitorConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", m.Addr),
		slog.Bool("read_only", m.ReadOnly),
		slog.Bool("token_set", m.Token != ""),
		slog.Bool("basic_auth_set", m.User != "" && m.Password != ""),
		slog.Any("hosts", m.Hosts),
	)
}

// APIConfig configures the HTTP API.
type APIConfig struct {
	// Addr is host:port; empty turns the API off.
	Addr string
	// MaxBody is the largest request body in bytes. Defaults to 1 MiB.
	MaxBody int64
	// Tokens are QFPURGE_API_TOKENS's entries ("name:token", full rights);
	// TokensFile is a tokens file of scoped tokens (see httpapi.Config).
	// One of the two is required when Addr is set.
	Tokens     []string
	TokensFile string
}

func (c Config) withDefaults() Config {
	pos := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BaseURL == "" {
		c.BaseURL = qianfan.DefaultBaseURL
	}
	c.Clock = fleet.Or(c.Clock)
	if c.QianfanAPI == "" {
		c.QianfanAPI = fleet.Auto
	}
	if c.ReadQPS == 0 {
		c.ReadQPS = c.QPS
	}
	if c.Concurrency == 0 {
		c.Concurrency = 10
	}
	if c.BatchSize == 0 {
		c.BatchSize = tasks.DefaultBatchSize
	}
	if c.GroupMaxSize == 0 {
		c.GroupMaxSize = 10 * c.BatchSize
	}
	if c.MaxRetry == 0 {
		c.MaxRetry = 12
	}
	if c.EventsMaxLen == 0 {
		c.EventsMaxLen = 100_000
	}
	if c.API.MaxBody == 0 {
		c.API.MaxBody = 1 << 20
	}
	pos(&c.BatchWait, 2*time.Second)
	pos(&c.BatchMaxWait, 10*time.Second)
	pos(&c.Retention, 7*24*time.Hour)
	pos(&c.LedgerTTL, 30*24*time.Hour)
	pos(&c.VerifyWait, 2*time.Minute)
	pos(&c.InUseMaxAge, 2*time.Second)
	pos(&c.ShutdownTimeout, 30*time.Second)
	pos(&c.PauseProbe, 30*time.Second)
	pos(&c.SweepInterval, 30*time.Second)
	pos(&c.ScheduleSync, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of the config (defaults filled first),
// naming the flag an operator sets it with.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.AccessKey == "" || c.SecretKey == "" {
		add("QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY must be set (or try --demo, which runs against a fake Qianfan)")
	}
	switch {
	case (c.ReadAccessKey == "") != (c.ReadSecretKey == ""):
		add("QIANFAN_READ_ACCESS_KEY and QIANFAN_READ_SECRET_KEY go together: set both (a read-only pair) or neither")
	case c.ReadAccessKey != "" && c.ReadAccessKey == c.AccessKey:
		add("QIANFAN_READ_ACCESS_KEY must be another key than QIANFAN_ACCESS_KEY: a read-only pair is a key of its own")
	}
	if c.ReadQPS < 0 {
		add("--read-qps %g must not be negative", c.ReadQPS)
	}
	if c.Concurrency < 1 {
		add("--concurrency %d must be at least 1", c.Concurrency)
	}
	if c.BatchSize < 1 {
		add("--batch-size %d must be at least 1", c.BatchSize)
	}
	if c.GroupMaxSize > 0 && c.GroupMaxSize < c.BatchSize {
		add("--group-max-size %d must be at least --batch-size %d", c.GroupMaxSize, c.BatchSize)
	}
	if c.BatchWait < time.Second || c.BatchWait%time.Second != 0 {
		add("--batch-wait %s must be whole seconds, at least 1s (Asynq's grace period counts whole seconds)", c.BatchWait)
	}
	if c.BatchMaxWait > 0 && c.BatchMaxWait < c.BatchWait {
		add("--batch-max-wait %s must not be shorter than --batch-wait %s", c.BatchMaxWait, c.BatchWait)
	}
	if _, err := fleet.ParseAPIMode(string(c.QianfanAPI)); err != nil {
		add("--qianfan-api: %w", err)
	}
	if c.InventoryEvery < 0 {
		add("--inventory-every %s must not be negative", c.InventoryEvery)
	}
	if c.QPS < 0 {
		add("--qps %g must not be negative", c.QPS)
	}
	if c.MaxRetry < 0 {
		add("--max-retry %d must not be negative", c.MaxRetry)
	}
	for name, d := range map[string]time.Duration{
		"--retention": c.Retention, "--ledger-ttl": c.LedgerTTL, "--verify-wait": c.VerifyWait, "--in-use-max-age": c.InUseMaxAge, "--grace": c.Grace,
		"--shutdown-timeout": c.ShutdownTimeout, "--pause-probe": c.PauseProbe, "--sweep-interval": c.SweepInterval, "--schedule-sync": c.ScheduleSync,
	} {
		if d < 0 {
			add("%s %s must be positive", name, d)
		}
	}
	if c.API.Addr != "" {
		if err := httpapi.CheckTokens(c.API.Tokens, c.API.TokensFile); err != nil {
			add("--api-addr %s: %w", c.API.Addr, err)
		}
	}
	if c.API.MaxBody < 1 {
		add("--api-max-body %d must be positive", c.API.MaxBody)
	}
	if c.Monitor.Addr != "" {
		if err := monitor.CheckConfig(c.monitorConfig()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c Config) monitorConfig() monitor.Config {
	m := c.Monitor
	return monitor.Config{Addr: m.Addr, ReadOnly: m.ReadOnly, Token: m.Token, User: m.User, Password: m.Password,
		Hosts: m.Hosts, Logger: c.Logger.With("component", "monitor"), QianfanAPI: c.QianfanAPI}
}

// LogValue is the whole resolved config with secrets masked, logged once at
// start.
func (c Config) LogValue() slog.Value {
	secret, readSecret := "unset", "unset"
	if c.SecretKey != "" {
		secret = "set (masked)"
	}
	if c.ReadSecretKey != "" {
		readSecret = "set (masked)"
	}
	return slog.GroupValue(
		slog.String("qianfan_base_url", redactURL(c.BaseURL)),
		slog.String("access_key", c.AccessKey),
		slog.String("qianfan_api", string(c.QianfanAPI)),
		slog.Duration("inventory_every", c.InventoryEvery),
		slog.Bool("inventory_versions", c.InventoryVersions),
		slog.String("secret_key", secret),
		slog.String("read_access_key", c.ReadAccessKey),
		slog.String("read_secret_key", readSecret),
		slog.Float64("qps", c.QPS),
		slog.Float64("read_qps", c.ReadQPS),
		slog.Int("concurrency", c.Concurrency),
		slog.Int("batch_size", c.BatchSize),
		slog.Duration("batch_wait", c.BatchWait),
		slog.Duration("batch_max_wait", c.BatchMaxWait),
		slog.Int("group_max_size", c.GroupMaxSize),
		slog.Int("max_retry", c.MaxRetry),
		slog.Duration("retention", c.Retention),
		slog.Duration("ledger_ttl", c.LedgerTTL),
		slog.Int64("events_max_len", c.EventsMaxLen),
		slog.Duration("verify_wait", c.VerifyWait),
		slog.Duration("in_use_max_age", c.InUseMaxAge),
		slog.Duration("grace", c.Grace),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Duration("pause_probe", c.PauseProbe),
		slog.Bool("skip_preflight", c.SkipPreflight),
		slog.Duration("sweep_interval", c.SweepInterval),
		slog.Any("monitor", c.Monitor),
		slog.String("api_addr", c.API.Addr),
		slog.Int64("api_max_body", c.API.MaxBody),
		slog.Int("api_tokens", len(c.API.Tokens)),
		slog.String("api_tokens_file", c.API.TokensFile),
		slog.Bool("embedded_redis", c.EmbeddedRedis),
		slog.Bool("demo", c.Demo),
		slog.String("schedule", c.Schedule),
		slog.Duration("schedule_sync", c.ScheduleSync),
		slog.String("otlp_endpoint", redactURL(c.OTLPEndpoint)),
		slog.String("log_level", c.LogLevel.String()),
	)
}

// redactURL shows a URL without user info; one that cannot be parsed is not
// shown at all.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(not a URL, not shown)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
}
