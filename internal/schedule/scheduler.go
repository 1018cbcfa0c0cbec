package schedule

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/fleet"
)

// Config configures a Scheduler.
type Config struct {
	// Path is the schedule file. Required.
	Path string
	// SyncInterval is how often the file is read again; changed entries are
	// registered and removed ones unregistered. Defaults to 30s.
	SyncInterval time.Duration
	// HeartbeatInterval is how often the entries are written to Redis for
	// `asynq cron ls` and asynqmon. Defaults to 10s (Asynq's default).
	HeartbeatInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// AsynqLogger receives Asynq's own scheduler logs. Defaults to Asynq's
	// logger on stderr.
	AsynqLogger asynq.Logger
	// AsynqLogLevel defaults to asynq.InfoLevel.
	AsynqLogLevel asynq.LogLevel
	// Clock stamps each trigger's fire time, from which its handler finds
	// the tick. Defaults to the wall clock.
	Clock fleet.Clock
}

func (c Config) withDefaults() Config {
	if c.SyncInterval <= 0 {
		c.SyncInterval = 30 * time.Second
	}
	c.Logger = cmpLogger(c.Logger)
	c.Clock = fleet.Or(c.Clock)
	return c
}

// Scheduler runs a schedule file with Asynq's PeriodicTaskManager. It is a
// maintenance.Service: New checks the file, Start runs it, Stop ends it.
type Scheduler struct {
	mgr  *asynq.PeriodicTaskManager
	p    *provider
	stop sync.Once
}

// New loads and validates the schedule file (a bad file fails here, with
// its lines) and builds the PeriodicTaskManager on rdb, which the caller
// keeps owning. Nothing runs until Start.
func New(rdb redis.UniversalClient, cfg Config) (*Scheduler, error) {
	cfg = cfg.withDefaults()
	if cfg.Path == "" {
		return nil, fmt.Errorf("schedule: no file")
	}
	p := &provider{path: cfg.Path, log: cfg.Logger}
	if _, err := p.load(); err != nil {
		return nil, err
	}
	var alog asynq.Logger
	if cfg.AsynqLogger != nil {
		alog = sharedCloseLogger{cfg.AsynqLogger}
	}
	mgr, err := asynq.NewPeriodicTaskManager(asynq.PeriodicTaskManagerOpts{
		PeriodicTaskConfigProvider: p,
		// Asynq v0.26 takes the shared go-redis client, so sentinel,
		// cluster, TLS and usernames work as for the rest of the worker.
		RedisUniversalClient: rdb,
		SyncInterval:         cfg.SyncInterval,
		SchedulerOpts: &asynq.SchedulerOpts{
			HeartbeatInterval: cfg.HeartbeatInterval,
			Logger:            alog,
			LogLevel:          cfg.AsynqLogLevel,
			PostEnqueueFunc:   recordFired(rdb, cfg.Logger, cfg.Clock),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	return &Scheduler{mgr: mgr, p: p}, nil
}

// Start runs the schedule: its triggers are enqueued from now on.
func (s *Scheduler) Start(context.Context) error {
	if err := s.mgr.Start(); err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	return nil
}

// Stop stops the manager; entries disappear from `asynq cron ls`. Only a
// started Scheduler may be stopped; a second Stop does nothing.
func (s *Scheduler) Stop() { s.stop.Do(s.mgr.Shutdown) }

// Entries returns the schedule currently registered (the last good file).
func (s *Scheduler) Entries() []Entry {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return append([]Entry(nil), s.p.entries...)
}

// recordFired stores when each trigger was enqueued, so its handler can find
// the tick however late it runs. The record is keyed by the trigger's task ID.
func recordFired(rdb redis.UniversalClient, log *slog.Logger, clock fleet.Clock) func(*asynq.TaskInfo, error) {
	return func(info *asynq.TaskInfo, err error) {
		now := clock.Now()
		if err != nil {
			name := "?"
			if info != nil {
				name = triggerName(info.Payload)
			}
			log.Error("scheduled purge: trigger not enqueued", "schedule", name, "err", err)
			return
		}
		ttl := time.Hour
		var tr Trigger
		if json.Unmarshal(info.Payload, &tr) == nil {
			if s, err := parseSpec(tr.Cron); err == nil {
				_, period := Tick(s, now)
				ttl = claimTTL(period)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rdb.Set(ctx, firedPrefix+info.ID, now.UnixNano(), ttl).Err(); err != nil {
			log.Warn("scheduled purge: cannot record the trigger's fire time; its handler will use its own clock",
				"schedule", tr.Name, "task_id", info.ID, "err", err)
		}
	}
}

func triggerName(payload []byte) string {
	var tr Trigger
	_ = json.Unmarshal(payload, &tr)
	return tr.Name
}

// provider is the PeriodicTaskConfigProvider: it reads the file at each sync
// and, when the file is bad, keeps returning the last good schedule.
type provider struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	good    []*asynq.PeriodicTaskConfig
	entries []Entry
	sum     [32]byte
	lastErr string
}

// GetConfigs implements asynq.PeriodicTaskConfigProvider.
func (p *provider) GetConfigs() ([]*asynq.PeriodicTaskConfig, error) {
	cfgs, err := p.load()
	if err != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.good == nil {
			return nil, err
		}
		if msg := err.Error(); msg != p.lastErr {
			p.lastErr = msg
			p.log.Error("schedule reload failed; keeping the last good schedule", "file", p.path,
				"entries", len(p.entries), "err", err)
		}
		return p.good, nil
	}
	return cfgs, nil
}

// load reads and validates the file; on success it becomes the last good
// schedule.
func (p *provider) load() ([]*asynq.PeriodicTaskConfig, error) {
	data, err := os.ReadFile(p.path)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	sum := sha256.Sum256(data)
	p.mu.Lock()
	if p.good != nil && sum == p.sum {
		defer p.mu.Unlock()
		p.lastErr = ""
		return p.good, nil
	}
	p.mu.Unlock()

	entries, err := Parse(data, p.path)
	if err != nil {
		return nil, err
	}
	cfgs := make([]*asynq.PeriodicTaskConfig, 0, len(entries))
	for _, e := range entries {
		c, err := e.periodicConfig()
		if err != nil {
			return nil, &LineError{File: p.path, Line: e.Line, Msg: err.Error()}
		}
		cfgs = append(cfgs, c)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	reload := p.good != nil
	p.good, p.entries, p.sum, p.lastErr = cfgs, entries, sum, ""
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name + " (" + e.Spec() + ")"
	}
	msg := "schedule loaded"
	if reload {
		msg = "schedule reloaded"
	}
	p.log.Info(msg, "file", p.path, "entries", strings.Join(names, ", "))
	for _, e := range entries {
		if e.File == "" {
			continue
		}
		if _, err := os.Stat(e.File); err != nil {
			p.log.Warn("scheduled purge reads a file that is not readable now; it is read again at each run",
				"schedule", e.Name, "err", err)
		}
	}
	return cfgs, nil
}

// periodicConfig is the entry as Asynq registers it. The trigger's Asynq
// options are part of the entry's identity (PeriodicTaskManager diffs on
// spec, type, payload and options), so they depend on the entry only.
func (e Entry) periodicConfig() (*asynq.PeriodicTaskConfig, error) {
	s, err := parseSpec(e.Spec())
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(e.trigger())
	if err != nil {
		return nil, err
	}
	// Completed triggers stay visible in asynqmon for about one period
	// (between a minute and a day), with the producer's receipt as their
	// result. A fixed reference time keeps the options, and so the entry's
	// identity, the same at every reload.
	_, period := Tick(s, time.Date(2025, 1, 6, 12, 0, 0, 0, time.UTC))
	retention := min(max(period, time.Minute), 24*time.Hour)
	return &asynq.PeriodicTaskConfig{
		Cronspec: e.Spec(),
		Task:     asynq.NewTask(TypeScheduledPurge, b),
		Opts: []asynq.Option{
			asynq.Queue(asynqlayout.Queue),
			asynq.MaxRetry(5),
			asynq.Timeout(5 * time.Minute),
			asynq.Retention(retention),
		},
	}, nil
}

// sharedCloseLogger demotes the error Asynq's scheduler logs on every
// shutdown when it was given a shared client ("redis connection is shared
// so the Client can't be closed through asynq"): closing it is the worker's
// job, so the message is noise.
type sharedCloseLogger struct{ asynq.Logger }

func (l sharedCloseLogger) Error(args ...any) {
	if strings.Contains(fmt.Sprint(args...), "connection is shared") {
		l.Logger.Debug(args...)
		return
	}
	l.Logger.Error(args...)
}
