// Package worker is a qfpurge worker: the Asynq server that aggregates
// small delete jobs into batches and runs the batch handler against Qianfan,
// the sweeper that repairs what Asynq leaves behind after crashes, and the
// optional monitor, HTTP API and scheduler. cmd/worker, cmd/bench and the
// end-to-end tests all run this one package.
//
// New checks the whole configuration and builds everything; Start binds the
// listeners and loads the schedule before Asynq takes any work, so every
// configuration mistake stops the worker before it has done anything;
// Shutdown stops it in the reverse order.
package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/httpapi"
	"github.com/qfpurge/qfpurge/internal/inuse"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/maintenance"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/policy"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/schedule"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/internal/tracing"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/netutil"
)

// apiMaxConns caps the HTTP API's open connections.
const apiMaxConns = 256

// Worker is one qfpurge worker process's machinery.
type Worker struct {
	cfg     Config
	rdb     redis.UniversalClient
	log     *slog.Logger
	insp    *asynq.Inspector
	metrics *monitor.Metrics
	ledger  *ledger.Ledger
	prod    *enqueue.Producer
	srv     *asynq.Server
	mux     *asynq.ServeMux

	mon      *monitor.Server
	api      *http.Server
	apiNames []string
	apiLn    net.Listener
	sched    *schedule.Scheduler
	rules    *policy.Runner

	verifier *inventory.Verifier
	qc       *qianfan.Client
	mode     *fleet.APIModeStore
	inUse    *inuse.View
	member   string // this worker's name in the fleet: host, process and a random suffix
	pause    *fleet.PauseStore
	prober   *fleet.Prober

	warnGauge *prometheus.GaugeVec
	warnMu    sync.Mutex
	warnings  []Warning

	// services are the background loops and the Asynq server, started and
	// stopped in one place (Start, Shutdown).
	services maintenance.Group
	bg       sync.WaitGroup

	tracing *tracing.Provider // nil when off or given by Config.TracerProvider
	tp      trace.TracerProvider
}

// New checks cfg and builds a worker on rdb, which the caller keeps owning.
// Nothing runs until Start.
func New(rdb redis.UniversalClient, cfg Config) (_ *Worker, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, rdb: rdb, log: cfg.Logger, tp: cfg.TracerProvider}
	if w.tp == nil {
		if w.tracing, err = tracing.Setup(context.Background(), tracing.Config{Endpoint: cfg.OTLPEndpoint, Logger: w.log.With("component", "tracing")}); err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
		if w.tracing != nil {
			w.tp = w.tracing.TracerProvider()
			defer func() {
				if err != nil {
					_ = w.tracing.Shutdown(context.Background())
				}
			}()
		}
	}
	w.insp = asynq.NewInspectorFromRedisClient(rdb)
	w.metrics = monitor.NewMetrics(rdb, w.insp, w.log.With("component", "metrics"))
	w.warnGauge = warningGauge()
	w.metrics.Registry().MustRegister(w.warnGauge)
	qc, err := w.qianfanClient()
	if err != nil {
		return nil, err
	}
	opts := tasks.Options{MaxRetry: cfg.MaxRetry, Retention: cfg.Retention}
	w.ledger = ledger.New(rdb, ledger.Config{TTL: cfg.LedgerTTL, EventsMaxLen: cfg.EventsMaxLen, Logger: w.log, Clock: cfg.Clock})
	w.verifier = inventory.NewVerifier(rdb, qc, inventory.VerifierConfig{
		MaxWait:       cfg.VerifyWait,
		Quiet:         w.quiet,
		CallsUnderWay: w.ledger.CallsUnderWay,
		Observe:       w.metrics.Listing,
		V2Only:        w.v2Only,
		Paused:        w.paused,
		Logger:        w.log.With("component", "verifier"),
		Clock:         cfg.Clock,
		Ticker:        cfg.Ticker,
	})
	w.qc = qc
	w.mode = fleet.NewAPIModeStore(rdb, cfg.QianfanAPI).WithClock(cfg.Clock)
	w.member = memberName()
	w.pause = fleet.NewPauseStore(rdb).WithClock(cfg.Clock)
	w.prober = fleet.NewProber(w.pause, fleet.ProberConfig{Every: cfg.PauseProbe, Probe: w.probe, Logger: w.log.With("component", "pause"),
		Clock: cfg.Clock, Ticker: cfg.Ticker})
	iu := inuse.Config{MaxAge: cfg.InUseMaxAge}
	if qc.HasReadKey() {
		// Reads spend the read pair's budget, not the deletions': list
		// again half-way, so batches do not wait for a listing at MaxAge.
		iu.RefreshAhead = cfg.InUseMaxAge / 2
	}
	w.inUse = inuse.New(rdb, qc, iu)
	handler := tasks.NewHandler(tasks.QianfanDeleter{Client: qc}, asynq.NewClientFromRedisClient(rdb), w.ledger, inventory.NewStore(rdb),
		tasks.HandlerConfig{BatchSize: cfg.BatchSize, Options: opts, Logger: w.log, Observer: w.metrics,
			Guard: w.inUse, Pause: w.pause, PausePoll: max(cfg.PauseProbe/3, time.Second), API: w.mode, Clock: cfg.Clock,
			Finder: tasks.QianfanFinder{Client: qc}, TracerProvider: w.tp})
	w.prod, err = enqueue.New(rdb, enqueue.Config{BatchSize: cfg.BatchSize, MaxRetry: cfg.MaxRetry, Retention: cfg.Retention,
		TracerProvider: w.tp})
	if err != nil {
		return nil, err
	}
	// Rule runs plan through the same client, so under the same QPS budget.
	w.rules = policy.NewRunner(rdb, policy.QianfanSource(qc), w.prod, policy.Config{
		Store:  policy.StoreConfig{TTL: cfg.LedgerTTL},
		Logger: w.log.With("component", "rules"), Observer: w.metrics,
	})
	w.srv = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:      cfg.Concurrency,
		Queues:           map[string]int{asynqlayout.Queue: 1},
		GroupAggregator:  &tasks.Aggregator{Options: opts, Logger: w.log},
		GroupGracePeriod: cfg.BatchWait,
		GroupMaxDelay:    max(cfg.BatchMaxWait, 0),
		GroupMaxSize:     max(cfg.GroupMaxSize, 0),
		// An idle worker looks for ready batches every 0.5-1.5 s by default:
		// a burst's first batches, which producers merge at once, would
		// wait that long. An idle slot's look is one short Lua call.
		TaskCheckInterval: idleCheck,
		RetryDelayFunc:    tasks.RetryDelay,
		IsFailure:         tasks.IsFailure,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		Logger:            NewAsynqLogger(w.log.With("component", "asynq")),
		LogLevel:          AsynqLevel(cfg.LogLevel),
	})
	w.mux = asynq.NewServeMux()
	w.mux.Handle(tasks.TypeDelete, handler)
	w.mux.Handle(tasks.TypeDeleteBatch, handler)
	// Every worker handles scheduled-purge triggers, with or without a
	// schedule of its own: any replica's trigger may land here.
	w.mux.Handle(schedule.TypeScheduledPurge,
		schedule.NewHandler(rdb, w.prod, schedule.HandlerConfig{Rules: w.rules, Logger: w.log.With("component", "schedule")}))
	w.mux.Handle(policy.TypeRuleRun, w.rules)
	if cfg.Monitor.Addr != "" {
		mc := cfg.monitorConfig()
		mc.Notes = w.readyNotes
		if w.mon, err = monitor.New(rdb, w.insp, w.metrics, mc); err != nil {
			return nil, err
		}
	}
	if cfg.API.Addr != "" {
		if err := w.buildAPI(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// idleCheck is how often an idle worker looks for ready batches (Asynq
// waits between half and one and a half of it).
const idleCheck = 200 * time.Millisecond

func (w *Worker) qianfanClient() (*qianfan.Client, error) {
	c := w.cfg
	opts := []qianfan.Option{qianfan.WithBaseURL(c.BaseURL), qianfan.WithLogger(w.log.With("component", "qianfan")),
		qianfan.WithTracerProvider(w.tp)}
	if c.QPS > 0 {
		// A budget for the whole fleet sharing this Redis.
		l, err := fleet.NewLimiter(w.rdb, fleet.LimitConfig{QPS: c.QPS, Key: fleet.LimitKey(c.BaseURL, c.AccessKey), Observe: w.metrics.LimiterWait})
		if err != nil {
			return nil, err
		}
		opts = append(opts, qianfan.WithLimiter(l))
	}
	if c.ReadAccessKey != "" {
		// Reads sign with the read-only pair and spend its own budget.
		var rl qianfan.Limiter
		if c.ReadQPS > 0 {
			l, err := fleet.NewLimiter(w.rdb, fleet.LimitConfig{QPS: c.ReadQPS, Key: fleet.LimitKey(c.BaseURL, c.ReadAccessKey), Observe: w.metrics.LimiterWait})
			if err != nil {
				return nil, err
			}
			rl = l
		}
		opts = append(opts, qianfan.WithReadKey(qianfan.Credentials{AccessKey: c.ReadAccessKey, SecretKey: c.ReadSecretKey}, rl))
	}
	return qianfan.New(qianfan.Credentials{AccessKey: c.AccessKey, SecretKey: c.SecretKey}, append(opts, c.QianfanOptions...)...)
}

func (w *Worker) buildAPI() error {
	api, err := httpapi.New(httpapi.Config{
		Tokens:       w.cfg.API.Tokens,
		TokensFile:   w.cfg.API.TokensFile,
		MaxBodyBytes: w.cfg.API.MaxBody,
		PendingTTL:   w.cfg.LedgerTTL,
		Logger:       w.log.With("component", "httpapi"),
		// Nil when tracing is off: then no traceparent header is read.
		TracerProvider: w.tp,
	}, httpapi.Deps{Redis: w.rdb, Ledger: w.ledger, DeadLetters: deadletter.NewStore(w.rdb), Producer: w.prod, Archive: w.insp,
		Rules: &httpapi.Rules{Lookup: w.rule, Submitter: w.rules}, Runs: w.rules.Store(), DryRun: w.inUse.DryRun,
		Attribute: func(r *enqueue.Request, by string, names []string) { r.RequestedBy, r.NameScope = by, names }})
	if err != nil {
		return err
	}
	w.apiNames = api.TokenNames()
	w.api = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	// Shutdown waits for handlers; event streams end only when told.
	w.api.RegisterOnShutdown(api.Close)
	return nil
}

// Start binds the listeners, loads the schedule, then starts processing and
// serving. On an error nothing keeps running.
func (w *Worker) Start() (err error) {
	w.log.Info("qfpurge worker starting", "config", w.cfg)
	defer func() {
		if err != nil {
			w.Shutdown()
		}
	}()
	if err := w.listen(); err != nil {
		return err
	}
	w.checkSurroundings()
	if w.cfg.Schedule != "" {
		if w.sched, err = w.newScheduler(); err != nil {
			return err
		}
	}
	if !w.cfg.SkipPreflight {
		if err := w.preflight(); err != nil {
			return err
		}
	}
	// Joining comes first: a worker whose API setting contradicts the
	// fleet's changes nothing, not even the grace period.
	if err := w.services.Start(context.Background(), fleet.NewMemberBeat(w.mode, w.member, fleet.BeatConfig{
		Clock: w.cfg.Clock, Logger: w.log.With("component", "fleet"), Ticker: w.cfg.Ticker})); err != nil {
		return err
	}
	if err := enqueue.SetGrace(context.Background(), w.rdb, w.cfg.Grace); err != nil {
		return fmt.Errorf("record the grace period: %w", err)
	}
	if err := w.services.Start(context.Background(), w.maintenance()...); err != nil {
		return err
	}
	if w.mon != nil {
		w.mon.Serve()
	}
	if w.api != nil {
		w.bg.Go(func() {
			if err := w.api.Serve(w.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.log.Error("http api stopped", "err", err)
			}
		})
		w.log.Info("http api listening", "addr", w.apiLn.Addr().String(), "tokens", w.apiNames)
	}
	w.log.Info("qfpurge worker running", "queue", asynqlayout.Queue)
	return nil
}

// paused reports whether the fleet's deletions are paused (not probing).
func (w *Worker) paused(ctx context.Context) bool {
	st, err := w.pause.Status(ctx)
	return err == nil && st.State == fleet.Paused
}

// v2Only reports whether the fleet deletes through V2 (V1 not to be read).
func (w *Worker) v2Only(ctx context.Context) bool {
	m, err := w.mode.Effective(ctx)
	return err == nil && m == fleet.V2
}

// probe is one signed read call: V2's model listing, or V1's where V2
// does not serve.
func (w *Worker) probe(ctx context.Context) error {
	_, _, err := w.qc.DescribeCustomModelSets(ctx, "", 1)
	if err != nil && qianfan.IsGone(err) {
		_, _, err = w.qc.ListModels(ctx, qianfan.ModelListRequest{PageNo: 1, PageSize: 1})
	}
	return err
}

// ErrCredentials wraps a preflight refusal of the credentials.
var ErrCredentials = errors.New("Qianfan refused the credentials")

// preflight checks the credentials with one read call before the worker
// takes any work. A refusal stops the worker, naming the problem (never the
// secret); any other failure only warns, and the pause applies at run time.
func (w *Worker) preflight() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := w.probe(ctx)
	switch {
	case err == nil:
		if w.qc.HasReadKey() {
			// The full key signs deletions only: the first one tests it,
			// and a refusal pauses the fleet naming it.
			w.log.Info("read-only pair checked: Qianfan answered a read call it signed; QIANFAN_ACCESS_KEY signs only deletions, and the first one tests it")
		} else {
			w.log.Info("credentials checked: Qianfan answered a signed read call")
		}
		if st, _ := w.pause.Status(ctx); st.State == fleet.Paused && !st.Manual {
			// A restart with new credentials: let one delete call test them.
			if err := w.pause.Probe(ctx); err == nil {
				w.log.Warn("deletions were paused; these credentials work for reading, so one delete call will test them", "paused_for", st.Reason)
			}
		}
		return nil
	case qianfan.IsRequestError(err):
		return fmt.Errorf("%w: %s (%v)", ErrCredentials, cmp.Or(qianfan.CredentialTextOf(err), qianfan.CredentialProblemOf(err).String()), err)
	}
	w.log.Warn("could not check the credentials before starting; starting anyway (a refused call will pause deletions)", "err", err)
	return nil
}

// rule finds a rule entry of the schedule this worker runs (the last good
// file). The API serves only between the schedule's start and its stop.
func (w *Worker) rule(name string) (policy.Rule, bool) {
	if w.sched == nil {
		return policy.Rule{}, false
	}
	for _, e := range w.sched.Entries() {
		if e.Name == name && e.Rule != nil {
			return *e.Rule, true
		}
	}
	return policy.Rule{}, false
}

// quiet reports whether no deletion waits or runs: then a wanted listing is
// taken at once, since no deletion will move it.
func (w *Worker) quiet(ctx context.Context) bool {
	q, err := w.insp.GetQueueInfo(asynqlayout.Queue)
	if err != nil || q.Pending+q.Active+q.Aggregating > 0 {
		return false
	}
	n, err := w.ledger.CallsUnderWay(ctx, w.cfg.Clock.Now().Add(-5*time.Minute))
	return err == nil && n == 0
}

// listen binds the monitor and API addresses without serving yet.
func (w *Worker) listen() error {
	if w.mon != nil {
		if err := w.mon.Listen(); err != nil {
			if w.cfg.Monitor.Explicit || !errors.Is(err, syscall.EADDRINUSE) {
				return err
			}
			w.log.Warn("monitor not started: the default address is taken; set --monitor-addr to another address, or to empty to turn the monitor off",
				"addr", w.cfg.Monitor.Addr, "err", err)
			w.mon = nil
		}
	}
	if w.api != nil {
		ln, err := net.Listen("tcp", w.cfg.API.Addr)
		if err != nil {
			return fmt.Errorf("--api-addr: %w", err)
		}
		// Slow or idle clients wait for a slot instead of using up the
		// process's file descriptors; the server's timeouts free slots.
		w.apiLn = netutil.LimitListener(ln, apiMaxConns)
	}
	return nil
}

// MonitorAddr and APIAddr are the addresses listened on, once started ("" when off).
func (w *Worker) MonitorAddr() string {
	if w.mon == nil {
		return ""
	}
	return w.mon.Addr()
}

// APIAddr is the HTTP API's address, once started ("" when off).
func (w *Worker) APIAddr() string {
	if w.apiLn == nil {
		return ""
	}
	return w.apiLn.Addr().String()
}

// Producer enqueues through this worker's Redis with its batch size.
func (w *Worker) Producer() *enqueue.Producer { return w.prod }

// Shutdown stops taking work, lets running batches finish for the shutdown
// timeout (unfinished ones go back to the queue), and stops the listeners,
// the scheduler and the sweeper. It is safe to call more than once.
func (w *Worker) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if w.api != nil && w.apiLn != nil {
		if err := w.api.Shutdown(ctx); err != nil {
			w.api.Close()
		}
		w.apiLn = nil
	}
	if w.mon != nil {
		if err := w.mon.Shutdown(ctx); err != nil {
			w.log.Warn("monitor shutdown", "err", err)
		}
		w.mon = nil
	}
	// The scheduler first, then the Asynq server (running batches finish),
	// then the loops, and leaving the fleet last.
	w.services.Stop()
	w.bg.Wait()
	// Last, so the spans of the batches that just finished go too.
	if w.tracing != nil {
		if err := w.tracing.Shutdown(context.Background()); err != nil {
			w.log.Warn("could not send the last spans to the OTLP endpoint", "err", err)
		}
		w.tracing = nil
	}
}

// newScheduler loads and checks the schedule file; it runs once started.
func (w *Worker) newScheduler() (*schedule.Scheduler, error) {
	return schedule.New(w.rdb, schedule.Config{
		Path:          w.cfg.Schedule,
		SyncInterval:  w.cfg.ScheduleSync,
		Logger:        w.log.With("component", "schedule"),
		AsynqLogger:   NewAsynqLogger(w.log.With("component", "schedule")),
		AsynqLogLevel: AsynqLevel(w.cfg.LogLevel),
		Clock:         w.cfg.Clock,
	})
}

// maintenance lists the services Start starts after joining the fleet, in
// order; Shutdown stops them in the reverse order.
func (w *Worker) maintenance() []maintenance.Service {
	tick := w.cfg.Ticker
	s := []maintenance.Service{
		newSweeper(w.rdb, w.ledger, w.cfg.SweepInterval, tick, w.log.With("component", "sweeper")),
		inventory.NewVerifyLoop(w.verifier),
		w.prober,
	}
	if w.cfg.InventoryEvery > 0 {
		s = append(s, inventory.NewRefreshLoop(w.verifier, inventory.RefreshConfig{
			Every: w.cfg.InventoryEvery, Versions: w.cfg.InventoryVersions, V1: func(ctx context.Context) bool { return !w.v2Only(ctx) }}))
	}
	s = append(s, asynqServer{w.srv, w.mux})
	if w.sched != nil {
		s = append(s, w.sched)
	}
	return s
}

// memberName names this worker among the fleet's: host and process, so an
// operator can find it, and a random suffix, so two never collide.
func memberName() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%x", cmp.Or(host, "worker"), os.Getpid(), b)
}
