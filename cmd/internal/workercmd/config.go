package workercmd

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/httpapi"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/redisconn"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/internal/tracing"
	"github.com/qfpurge/qfpurge/internal/worker"
)

// redactURL shows a URL without its user info; one that cannot be parsed
// is not shown.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(not a URL, not shown)"
	}
	return u.Redacted()
}

// Environment variables the worker reads besides its flags' (QFPURGE_<FLAG>).
// Credentials come only from the environment, never from flags (which other
// users can read in ps) or the config file.
const (
	envRedisURL        = "REDIS_URL"
	envAccessKey       = "QIANFAN_ACCESS_KEY"
	envSecretKey       = "QIANFAN_SECRET_KEY"
	envReadAccessKey   = "QIANFAN_READ_ACCESS_KEY"
	envReadSecretKey   = "QIANFAN_READ_SECRET_KEY"
	envBaseURL         = "QIANFAN_BASE_URL"
	envMonitorToken    = "QFPURGE_MONITOR_TOKEN"
	envMonitorUser     = "QFPURGE_MONITOR_USER"
	envMonitorPassword = "QFPURGE_MONITOR_PASSWORD"
)

// sources resolve the flags the command line leaves unset: QFPURGE_<FLAG>,
// the established REDIS_URL and QIANFAN_BASE_URL, then --config.
func sources(getenv func(string) string) cli.Sources {
	return cli.Sources{
		Getenv: getenv,
		Also:   map[string]string{"redis-url": envRedisURL, "qianfan-base-url": envBaseURL},
		Local:  []string{"config", "print-config"},
	}
}

// options are the command line resolved against the environment.
type options struct {
	worker       worker.Config
	redisURL     string
	embedded     bool
	embeddedAddr string
	demo         bool
	logFormat    string
}

const usageHead = `Runs qfpurge's Asynq workers: batches pending Qianfan model deletions and calls
Qianfan's signed batchDelete.

Every flag may also come from the environment as QFPURGE_<FLAG> (upper case,
dashes as underscores: --batch-size is QFPURGE_BATCH_SIZE) or from --config
FILE, a YAML mapping of flag names to values. Flags win over the environment,
the environment over the file, the file over the defaults. Further environment:
  REDIS_URL                 redis://[user:pass@]host:port/db, rediss://, redis+sentinel://, redis+cluster://
                            (QFPURGE_REDIS_URL wins if both are set)
  QIANFAN_ACCESS_KEY, QIANFAN_SECRET_KEY   required (the secret is never logged)
  QIANFAN_READ_ACCESS_KEY, QIANFAN_READ_SECRET_KEY
                            optional read-only pair: it signs every read (listings, in-use checks,
                            verification, rule plans, dry runs), the pair above only deletions
  QIANFAN_BASE_URL          Qianfan's API root
  QFPURGE_MONITOR_TOKEN, or QFPURGE_MONITOR_USER and QFPURGE_MONITOR_PASSWORD
                            the monitor's credentials (required beyond loopback)
  QFPURGE_API_TOKENS        the HTTP API's bearer tokens, name:token entries, comma-separated
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, ...
                            OpenTelemetry's standard settings: traces go out only when an endpoint is set`

// flags are the worker's flags as parsed: the options, and the values
// turned into the configuration once every source has had its say.
type flags struct {
	o                        options
	api, monitorHosts, level string
	configFile               string
	printConfig              bool
}

// register defines the worker's flags on fs. A flag defined here is also
// read from QFPURGE_<FLAG> and the config file, and shown by --print-config.
func (fl *flags) register(fs *pflag.FlagSet) {
	o := &fl.o
	c := &o.worker
	// Defaults are shown without the environment's values: REDIS_URL may
	// carry a password.
	fs.StringVar(&fl.configFile, "config", "", "read flags from this YAML `FILE` (keys are flag names)")
	fs.BoolVar(&fl.printConfig, "print-config", false, "print the resolved configuration (secrets masked) as a config file and exit")
	fs.StringVar(&o.redisURL, "redis-url", "", "Redis `URL` (env "+envRedisURL+")")
	fs.BoolVar(&o.embedded, "embedded-redis", false, "without a Redis URL, start an in-memory Redis on --embedded-addr (its queue is lost when the worker stops)")
	fs.StringVar(&o.embeddedAddr, "embedded-addr", "127.0.0.1:6379", "where the in-memory Redis listens (--demo, --embedded-redis)")
	fs.BoolVar(&o.demo, "demo", false, "start an in-memory Redis and a fake Qianfan, and enqueue sample IDs (one of them bad) to show batching, retries and a dead letter")
	fs.StringVar(&c.BaseURL, "qianfan-base-url", "", "Qianfan API base `URL` (env "+envBaseURL+"; default "+qianfan.DefaultBaseURL+")")
	fs.StringVar(&fl.api, "qianfan-api", "auto", "which Qianfan API deletes: v1 (batchDelete), v2 (one ID per call), or auto (V1 until it is gone, then V2 for the whole fleet)")
	fs.DurationVar(&c.InventoryEvery, "inventory-every", 0, "list the whole account this often (one worker at a time) so int IDs' string forms are known before V2 needs them; 0: only when a lost answer or a rule needs a listing")
	fs.BoolVar(&c.InventoryVersions, "inventory-versions", false, "with --inventory-every, also read every model's V1 detail (one call per model) to learn version int IDs' string forms")
	fs.IntVar(&c.Concurrency, "concurrency", 10, "batches processed at once")
	fs.IntVar(&c.BatchSize, "batch-size", tasks.DefaultBatchSize, "most IDs per API call (keep equal to the producers' batch size)")
	fs.IntVar(&c.GroupMaxSize, "group-max-size", 10*tasks.DefaultBatchSize, "most queued jobs merged from one group per aggregation tick; above --batch-size the merged set is cut into full batches, which raises throughput per group")
	fs.DurationVar(&c.BatchWait, "batch-wait", 2*time.Second, "aggregation grace period: a group is batched once no job arrived for this long (whole seconds, at least 1s)")
	fs.DurationVar(&c.BatchMaxWait, "batch-max-wait", 10*time.Second, "longest a job waits in its group before its batch is formed")
	fs.Float64Var(&c.QPS, "qps", 10, "most API calls per second across every worker sharing this Redis (per Qianfan endpoint and access key); 0 for no cap")
	fs.Float64Var(&c.ReadQPS, "read-qps", 0, "with a read-only pair (QIANFAN_READ_ACCESS_KEY), its own budget of read calls per second across every worker (per endpoint and read key); 0: the same as --qps")
	fs.IntVar(&c.MaxRetry, "max-retry", 12, "failed attempts before a batch is dead-lettered (throttling does not count)")
	fs.DurationVar(&c.Retention, "retention", 7*24*time.Hour, "how long completed batches stay visible in the monitor")
	fs.DurationVar(&c.LedgerTTL, "ledger-ttl", 30*24*time.Hour, "how long each ID's outcome is remembered")
	fs.Int64Var(&c.EventsMaxLen, "events-max-len", 100_000, "approximate cap of the qfpurge:events stream; -1 for none")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long running batches may finish on SIGTERM before they are requeued")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", 30*time.Second, "how often stranded Asynq groups are looked for")
	fs.DurationVar(&c.PauseProbe, "pause-probe", 30*time.Second, "while deletions are paused (credentials or permission refused), how often the credentials are read again to resume")
	fs.DurationVar(&c.VerifyWait, "verify-wait", 2*time.Minute, "longest a batch rejected after a lost answer waits for the queue to go quiet before the account is listed to settle it")
	fs.DurationVar(&c.Grace, "grace", 0, "least delay between any request and its first call, during which it can be cancelled (qfpurge requests cancel); requests may ask for longer")
	fs.DurationVar(&c.InUseMaxAge, "in-use-max-age", 2*time.Second, "oldest view of services and batch inference tasks a batch is checked against before its call; longer saves read calls, but a service deployed meanwhile is not seen")
	fs.StringVar(&c.API.Addr, "api-addr", "", "serve the authenticated HTTP API on this address (e.g. 127.0.0.1:8081); off when empty; needs "+httpapi.TokensEnv+" or --api-tokens-file")
	fs.StringVar(&c.API.TokensFile, "api-tokens-file", "", "YAML file of named API tokens (SHA-256 hashes) with their scopes: kinds, name globs, a daily cap, rights (docs/api.md)")
	fs.Int64Var(&c.API.MaxBody, "api-max-body", 1<<20, "largest HTTP API request body in bytes; larger bodies answer 413")
	fs.StringVar(&c.Monitor.Addr, "monitor-addr", monitor.DefaultAddr, "serve asynqmon (/monitoring/), /metrics, /healthz and /readyz here; off when empty; "+
		"beyond loopback it needs "+envMonitorToken+" or "+envMonitorUser+"/"+envMonitorPassword)
	fs.BoolVar(&c.Monitor.ReadOnly, "monitor-readonly", false, "asynqmon shows tasks but cannot delete, run or archive them")
	fs.StringVar(&fl.monitorHosts, "monitor-hosts", "", "further host names the monitor answers to, comma-separated, e.g. a reverse proxy's; IP addresses, localhost and this machine's name always work")
	fs.StringVar(&c.Schedule, "schedule", "", "YAML `FILE` of scheduled purges; see docs/schedule.md; off when empty")
	fs.DurationVar(&c.ScheduleSync, "schedule-sync", 30*time.Second, "how often the --schedule file is read again for changes")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "send traces over OTLP/HTTP to this collector `URL` (e.g. http://otel-collector:4318; spans go to its /v1/traces); off when empty and "+
		tracing.EnvEndpoint+" and "+tracing.EnvTracesEndpoint+" are unset")
	fs.StringVar(&fl.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.SortFlags = false
}

// resolve fills what the command line left unset from the environment and
// the config file, and checks the result. Problems are cli.UsageErrors;
// requireRedis is false for --print-config, which runs nothing.
func (fl *flags) resolve(fs *pflag.FlagSet, getenv func(string) string, stderr io.Writer, requireRedis bool) (options, error) {
	if err := sources(getenv).Resolve(fs, fl.configFile); err != nil {
		return options{}, err
	}
	o := fl.o
	c := &o.worker
	c.AccessKey, c.SecretKey = getenv(envAccessKey), getenv(envSecretKey)
	c.ReadAccessKey, c.ReadSecretKey = getenv(envReadAccessKey), getenv(envReadSecretKey)
	c.API.Tokens = httpapi.ParseTokens(getenv(httpapi.TokensEnv))
	c.Monitor.Token, c.Monitor.User, c.Monitor.Password = getenv(envMonitorToken), getenv(envMonitorUser), getenv(envMonitorPassword)
	c.Monitor.Hosts = nil
	for h := range strings.SplitSeq(fl.monitorHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.Monitor.Hosts = append(c.Monitor.Hosts, h)
		}
	}
	c.QianfanAPI = fleet.APIMode(fl.api)
	c.EmbeddedRedis, c.Demo = o.embedded || o.demo, o.demo
	c.Monitor.Explicit = fs.Changed("monitor-addr")
	if err := o.check(fl.level, requireRedis); err != nil {
		return o, err
	}
	c.Logger = newLogger(stderr, o.logFormat, c.LogLevel)
	return o, nil
}

// printConfig writes the resolved flags as a config file, with the Redis
// password masked, and which credentials the environment holds.
func printConfig(w io.Writer, fs *pflag.FlagSet, getenv func(string) string) error {
	demo := fs.Lookup("demo").Value.String() == "true"
	err := sources(getenv).PrintConfig(w, fs, func(name, v string) string {
		switch {
		case name == "redis-url" && v != "":
			return redisconn.Redact(v)
		case name == "otlp-endpoint" && v != "":
			return redactURL(v)
		case name == "qianfan-base-url" && v == "" && !demo:
			// What the client calls when none is set (the demo's fake
			// gets its address only when it starts).
			return qianfan.DefaultBaseURL
		case name == "qianfan-base-url" && v != "":
			return redactURL(v)
		}
		return v
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "# from the environment only:")
	fmt.Fprintf(w, "# %s: %s\n", envAccessKey, cmp.Or(getenv(envAccessKey), "(unset)"))
	fmt.Fprintf(w, "# %s: %s\n", envReadAccessKey, cmp.Or(getenv(envReadAccessKey), "(unset)"))
	for _, name := range []string{envSecretKey, envReadSecretKey, envMonitorToken, envMonitorUser, envMonitorPassword, httpapi.TokensEnv, tracing.EnvHeaders, tracing.EnvTracesHeaders} {
		state := "(unset)"
		if getenv(name) != "" {
			state = "(set, masked)"
		}
		fmt.Fprintf(w, "# %s: %s\n", name, state)
	}
	return nil
}

// check reports every problem of the resolved options at once.
func (o *options) check(level string, requireRedis bool) error {
	c := &o.worker
	var errs []string
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Sprintf("--log-level %q: want debug, info, warn or error", level))
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		errs = append(errs, fmt.Sprintf("--log-format %q: want text or json", o.logFormat))
	}
	if o.redisURL != "" && (o.embedded || o.demo) {
		errs = append(errs, "a Redis URL and --embedded-redis or --demo exclude each other: the demo runs on its own in-memory Redis")
	}
	if requireRedis && o.redisURL == "" && !o.embedded && !o.demo {
		errs = append(errs, "no Redis: set "+envRedisURL+" (e.g. redis://127.0.0.1:6379/0), or pass --embedded-redis to run on an in-memory Redis whose queue is lost at exit, or --demo")
	}
	if len(errs) > 0 {
		return cli.Usagef("%s", strings.Join(errs, "; "))
	}
	return nil
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
