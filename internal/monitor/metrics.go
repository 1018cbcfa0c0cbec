package monitor

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/tasks"
)

// Metrics holds qfpurge's Prometheus series in a private registry. It
// implements tasks.Observer, and LimiterWait is the fleet limiter's hook.
type Metrics struct {
	reg *prometheus.Registry

	ids       *prometheus.CounterVec
	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	batchSize *prometheus.HistogramVec
	splits    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	waits     prometheus.Histogram
	listings  *prometheus.CounterVec
	fleet     *prometheus.CounterVec
	listTime  prometheus.Histogram
	ruleRuns  *prometheus.CounterVec
	ruleItems *prometheus.CounterVec
}

var (
	_ tasks.Observer  = (*Metrics)(nil)
	_ policy.Observer = (*Metrics)(nil)
)

// NewMetrics registers qfpurge's own series, asynq's queue collector and
// the dead-letter backlog, Go and process collectors in a new registry.
// rdb and insp may be nil (then the Redis-backed collectors are left out).
func NewMetrics(rdb redis.UniversalClient, insp *asynq.Inspector, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.Default()
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ids: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qfpurge_ids_total",
			Help: "IDs that reached an end state, by kind, ID type and state (deleted, presumed, dead, protected).",
		}, []string{"kind", "id_type", "state"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qfpurge_api_calls_total",
			Help: `Delete calls (each with the client's own retries) and the detail calls before a small batch's first call, by kind, ID type and outcome: "ok", the error code, "http_<status>", the error class, or "describe:<outcome>".`,
		}, []string{"kind", "id_type", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qfpurge_api_call_duration_seconds",
			Help:    "Time one batchDelete call took, the client's retries and limiter waits included.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"kind"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "qfpurge_api_call_batch_size",
			Help:    "IDs sent in one batchDelete call.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 75, 100, 200, 500},
		}, []string{"kind"}),
		splits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qfpurge_batch_splits_total",
			Help: `Batches split, by kind and reason: "bisect" (rejected with 500001), "oversize", "again" (still present after a lost answer) or "recheck" (absent, never shown to exist).`,
		}, []string{"kind", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qfpurge_batch_retries_total",
			Help: `Batches handed back to Asynq, by kind and reason: "transient", "throttled", "unknown", "gone", "verify" (waiting for a listing after a lost answer), "in-use" (waiting for the in-use check), "names" (waiting for a listing to learn names for a token's name scope) or "hold".`,
		}, []string{"kind", "reason"}),
		waits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "qfpurge_fleet_limiter_wait_seconds",
			Help:    "Time each API attempt waited for the fleet-wide QPS budget (0 when it could go at once).",
			Buckets: []float64{0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
	}
	m.listings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qfpurge_verification_listings_total",
		Help: `Complete listings taken to settle lost answers, by result ("ok" or "failed").`,
	}, []string{"result"})
	m.listTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "qfpurge_verification_listing_seconds",
		Help:    "Time one verification listing took.",
		Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	})
	m.fleet = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qfpurge_fleet_events_total",
		Help: `Changes of the whole fleet's state this process made: "paused" (credentials or permission refused), "resumed", "switched" (V1 gone, deleting through V2).`,
	}, []string{"event"})
	m.ruleRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qfpurge_rule_runs_total",
		Help: `Rule previews and runs that reached an end, by rule, mode (preview, run) and status (previewed, blocked, failed, empty, enqueued).`,
	}, []string{"rule", "mode", "status"})
	m.ruleItems = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qfpurge_rule_planned_total",
		Help: `Items planned by rule previews and runs, by rule, mode and action (delete, keep, protect).`,
	}, []string{"rule", "mode", "action"})
	m.reg.MustRegister(m.ids, m.calls, m.latency, m.batchSize, m.splits, m.retries, m.waits, m.listings, m.listTime, m.fleet,
		m.ruleRuns, m.ruleItems,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if rdb != nil {
		m.reg.MustRegister(deadLetterCollector{rdb: rdb, log: log}, pauseCollector{s: fleet.NewPauseStore(rdb), log: log})
	}
	if insp != nil {
		m.reg.MustRegister(&queueCollector{inner: metrics.NewQueueMetricsCollector(insp), insp: insp, log: log})
	}
	return m
}

// Fleet implements tasks.Observer.
func (m *Metrics) Fleet(event string) { m.fleet.WithLabelValues(event).Inc() }

// Listing records a verification listing (inventory.VerifierConfig.Observe).
func (m *Metrics) Listing(_ []inventory.Form, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "failed"
	}
	m.listings.WithLabelValues(result).Inc()
	m.listTime.Observe(took.Seconds())
}

// RunEnded implements policy.Observer.
func (m *Metrics) RunEnded(r policy.Record) {
	m.ruleRuns.WithLabelValues(r.Rule, string(r.Mode), string(r.Status)).Inc()
	for action, n := range map[policy.Action]int{policy.ActionDelete: r.Totals.Delete, policy.ActionKeep: r.Totals.Keep,
		policy.ActionProtect: r.Totals.Protect} {
		m.ruleItems.WithLabelValues(r.Rule, string(r.Mode), string(action)).Add(float64(n))
	}
}

// Registry is the private registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Call implements tasks.Observer.
func (m *Metrics) Call(k modelid.Kind, t modelid.IDType, outcome string, ids int, d time.Duration) {
	m.calls.WithLabelValues(string(k), string(t), outcome).Inc()
	m.latency.WithLabelValues(string(k)).Observe(d.Seconds())
	m.batchSize.WithLabelValues(string(k)).Observe(float64(ids))
}

// Outcome implements tasks.Observer.
func (m *Metrics) Outcome(k modelid.Kind, t modelid.IDType, state ledger.State, ids int) {
	m.ids.WithLabelValues(string(k), string(t), string(state)).Add(float64(ids))
}

// Split implements tasks.Observer.
func (m *Metrics) Split(k modelid.Kind, why string) { m.splits.WithLabelValues(string(k), why).Inc() }

// Retry implements tasks.Observer.
func (m *Metrics) Retry(k modelid.Kind, why string) { m.retries.WithLabelValues(string(k), why).Inc() }

// LimiterWait records one wait on the fleet QPS limiter (fleet.LimitConfig.Observe).
func (m *Metrics) LimiterWait(d time.Duration) { m.waits.Observe(d.Seconds()) }

var deadLettersDesc = prometheus.NewDesc("qfpurge_dead_letters",
	"Entries in the qfpurge:deadletters stream (the dead-letter backlog).", nil, nil)

// deadLetterCollector reads XLEN at scrape time.
type deadLetterCollector struct {
	rdb redis.UniversalClient
	log *slog.Logger
}

func (c deadLetterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deadLettersDesc }

func (c deadLetterCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.rdb.XLen(ctx, deadletter.Stream).Result()
	if err != nil {
		// Leave the series out rather than fail the whole scrape.
		c.log.Warn("metrics: reading the dead-letter backlog", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64(n))
}

var pausedDesc = prometheus.NewDesc("qfpurge_deletions_paused",
	"1 while the fleet's deletions are paused (credentials or permission refused), 0 otherwise.", []string{"state"}, nil)

// pauseCollector reads the fleet's pause at scrape time.
type pauseCollector struct {
	s   *fleet.PauseStore
	log *slog.Logger
}

func (c pauseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pausedDesc }

func (c pauseCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.s.Status(ctx)
	if err != nil {
		c.log.Warn("metrics: reading the pause", "err", err)
		return
	}
	v, state := 0.0, "running"
	if st.State != fleet.Running {
		v, state = 1, string(st.State)
	}
	ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, v, state)
}

var queueUpDesc = prometheus.NewDesc("qfpurge_queue_metrics_up",
	"1 when asynq's queue collector produced this scrape's asynq_* series, 0 when it failed "+
		"(e.g. Redis down, or asynq v0.26's GetQueueInfo Lua error on a missing task record).", nil, nil)

// queueCollector wraps asynq's collector, which on any error logs through
// the standard log package and emits nothing. The rest of /metrics is
// unaffected; qfpurge_queue_metrics_up says whether asynq's series are there.
type queueCollector struct {
	inner prometheus.Collector
	insp  *asynq.Inspector
	log   *slog.Logger
}

// Describe sends nothing, which makes this an unchecked collector: asynq's
// own Describe runs a full collection, which would touch Redis (and could
// fail) while the registry is being built.
func (c *queueCollector) Describe(chan<- *prometheus.Desc) {}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.insp.Queues()
	if err != nil {
		c.log.Warn("metrics: listing asynq queues", "err", err)
		ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 0)
		return
	}
	buf := make(chan prometheus.Metric, 64)
	done := make(chan int)
	go func() {
		n := 0
		for m := range buf {
			ch <- m
			n++
		}
		done <- n
	}()
	c.inner.Collect(buf)
	close(buf)
	n := <-done
	up := 1.0
	if len(queues) > 0 && n == 0 {
		up = 0
		c.log.Warn("metrics: asynq's queue collector produced nothing this scrape", "queues", queues)
	}
	ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, up)
}
