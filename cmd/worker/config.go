package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/qfpurge/qfpurge/internal/httpapi"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// config is the worker's resolved configuration: the environment gives
// defaults and flags override them.
type config struct {
	RedisURL     string
	AccessKey    string
	SecretKey    string
	BaseURL      string
	Concurrency  int
	BatchSize    int
	GroupMaxSize int
	BatchWait    time.Duration
	BatchMaxWait time.Duration
	QPS          float64
	MaxRetry     int
	Retention    time.Duration
	LedgerTTL    time.Duration
	EventsMaxLen int64
	Shutdown     time.Duration
	SweepEvery   time.Duration
	VerdictWait  time.Duration
	LogLevel     string
	LogFormat    string
	Demo         bool
	EmbeddedAddr string
	// HTTP API (issue 5): off unless APIAddr is set.
	APIAddr    string
	APIMaxBody int64
	APITokens  []string // from QFPURGE_API_TOKENS; never logged
	// Monitor (issue 4): asynqmon, /metrics, /healthz, /readyz; see monitor.go.
	Monitor monitorConfig
	// Scheduled purges (issue 4): see schedule.go and docs/schedule.md.
	Schedule     string
	ScheduleSync time.Duration
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c := config{
		RedisURL:  getenv("REDIS_URL"),
		AccessKey: getenv("QIANFAN_ACCESS_KEY"),
		SecretKey: getenv("QIANFAN_SECRET_KEY"),
		BaseURL:   getenv("QIANFAN_BASE_URL"),
		APITokens: httpapi.ParseTokens(getenv(httpapi.TokensEnv)),
	}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL (env REDIS_URL); empty starts an in-memory Redis on --embedded-addr")
	fs.StringVar(&c.BaseURL, "qianfan-base-url", or(c.BaseURL, "https://qianfan.baidubce.com"), "Qianfan API base URL (env QIANFAN_BASE_URL)")
	fs.IntVar(&c.Concurrency, "concurrency", 10, "batches processed at once")
	fs.IntVar(&c.BatchSize, "batch-size", tasks.DefaultBatchSize, "most IDs per API call (keep equal to the producers' batch size)")
	fs.IntVar(&c.GroupMaxSize, "group-max-size", 10*tasks.DefaultBatchSize, "most queued jobs merged from one group per aggregation tick; above --batch-size the merged set is cut into full batches, which raises throughput per group")
	fs.DurationVar(&c.BatchWait, "batch-wait", 2*time.Second, "aggregation grace period: a group is batched once no job arrived for this long (whole seconds, at least 1s)")
	fs.DurationVar(&c.BatchMaxWait, "batch-max-wait", 10*time.Second, "longest a job waits in its group before its batch is formed")
	fs.Float64Var(&c.QPS, "qps", 10, "most API calls per second across every worker sharing this Redis (per Qianfan endpoint and access key); 0 for no cap")
	fs.IntVar(&c.MaxRetry, "max-retry", 12, "failed attempts before a batch is dead-lettered (throttling does not count)")
	fs.DurationVar(&c.Retention, "retention", 7*24*time.Hour, "how long completed batches stay visible in the monitor")
	fs.DurationVar(&c.LedgerTTL, "ledger-ttl", 30*24*time.Hour, "how long each ID's outcome is remembered")
	fs.Int64Var(&c.EventsMaxLen, "events-max-len", 100_000, "approximate cap of the qfpurge:events stream; -1 for none")
	fs.DurationVar(&c.Shutdown, "shutdown-timeout", 30*time.Second, "how long running batches may finish on SIGTERM before they are requeued")
	fs.DurationVar(&c.SweepEvery, "sweep-interval", 30*time.Second, "how often stranded Asynq groups are looked for")
	fs.DurationVar(&c.VerdictWait, "verdict-wait", 10*time.Second, "how long an ID that answered 500001 after a lost answer waits (twice) for sibling batches before it is presumed deleted")
	fs.StringVar(&c.LogLevel, "log-level", or(getenv("QFPURGE_LOG_LEVEL"), "info"), "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", or(getenv("QFPURGE_LOG_FORMAT"), "text"), "text or json")
	fs.BoolVar(&c.Demo, "demo", false, "start a fake Qianfan and enqueue sample IDs (one of them bad) to show batching, retries and a dead letter")
	fs.StringVar(&c.EmbeddedAddr, "embedded-addr", "127.0.0.1:6379", "where the in-memory Redis listens when no Redis URL is given")
	fs.StringVar(&c.APIAddr, "api-addr", "", "serve the authenticated HTTP API on this address (e.g. 127.0.0.1:8081); off when empty; needs "+httpapi.TokensEnv)
	fs.Int64Var(&c.APIMaxBody, "api-max-body", 1<<20, "largest HTTP API request body in bytes; larger bodies answer 413")
	c.Monitor.addFlags(fs, getenv)
	fs.StringVar(&c.Schedule, "schedule", getenv("QFPURGE_SCHEDULE"), "YAML file of scheduled purges (env QFPURGE_SCHEDULE); see docs/schedule.md; off when empty")
	fs.DurationVar(&c.ScheduleSync, "schedule-sync", 30*time.Second, "how often the --schedule file is read again for changes")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Monitor.resolve(fs, getenv)
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, nil
}

func (c config) validate() error {
	var errs []error
	if c.AccessKey == "" || c.SecretKey == "" {
		errs = append(errs, errors.New("QIANFAN_ACCESS_KEY and QIANFAN_SECRET_KEY must be set (or try --demo, which runs against a fake Qianfan)"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency %d must be at least 1", c.Concurrency))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("--batch-size %d must be at least 1", c.BatchSize))
	}
	if c.GroupMaxSize < c.BatchSize {
		errs = append(errs, fmt.Errorf("--group-max-size %d must be at least --batch-size %d", c.GroupMaxSize, c.BatchSize))
	}
	if c.BatchWait < time.Second {
		errs = append(errs, fmt.Errorf("--batch-wait %s must be at least 1s (Asynq's minimum grace period)", c.BatchWait))
	}
	if c.BatchMaxWait < c.BatchWait {
		errs = append(errs, fmt.Errorf("--batch-max-wait %s must not be shorter than --batch-wait %s", c.BatchMaxWait, c.BatchWait))
	}
	if c.QPS < 0 {
		errs = append(errs, fmt.Errorf("--qps %g must not be negative", c.QPS))
	}
	if c.MaxRetry < 0 {
		errs = append(errs, fmt.Errorf("--max-retry %d must not be negative", c.MaxRetry))
	}
	if c.VerdictWait <= 0 {
		errs = append(errs, fmt.Errorf("--verdict-wait %s must be positive", c.VerdictWait))
	}
	if c.SweepEvery <= 0 {
		errs = append(errs, fmt.Errorf("--sweep-interval %s must be positive", c.SweepEvery))
	}
	if c.ScheduleSync <= 0 {
		errs = append(errs, fmt.Errorf("--schedule-sync %s must be positive", c.ScheduleSync))
	}
	if c.APIAddr != "" && len(c.APITokens) == 0 {
		errs = append(errs, fmt.Errorf("--api-addr %s: %w", c.APIAddr, httpapi.ErrNoTokens))
	}
	if c.APIMaxBody < 1 {
		errs = append(errs, fmt.Errorf("--api-max-body %d must be positive", c.APIMaxBody))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// LogValue masks secrets, so the config can be logged once at start.
func (c config) LogValue() slog.Value {
	redis := "embedded in-memory on " + c.EmbeddedAddr
	if c.RedisURL != "" {
		redis = redisconn.Redact(c.RedisURL)
	}
	secret := "unset"
	if c.SecretKey != "" {
		secret = "set (masked)"
	}
	return slog.GroupValue(
		slog.String("redis", redis),
		slog.String("qianfan_base_url", c.BaseURL),
		slog.String("access_key", c.AccessKey),
		slog.String("secret_key", secret),
		slog.Int("concurrency", c.Concurrency),
		slog.Int("batch_size", c.BatchSize),
		slog.Int("group_max_size", c.GroupMaxSize),
		slog.Duration("batch_wait", c.BatchWait),
		slog.Duration("batch_max_wait", c.BatchMaxWait),
		slog.Float64("qps", c.QPS),
		slog.Int("max_retry", c.MaxRetry),
		slog.Duration("retention", c.Retention),
		slog.Duration("ledger_ttl", c.LedgerTTL),
		slog.Bool("demo", c.Demo),
		slog.String("api_addr", c.APIAddr),
		slog.Int("api_tokens", len(c.APITokens)),
		slog.Any("monitor", c.Monitor),
		slog.String("schedule", c.Schedule),
	)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
