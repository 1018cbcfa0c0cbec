package fleet

import (
	"context"
	"log/slog"
	"time"

	"github.com/qfpurge/qfpurge/internal/maintenance"
)

// ProberConfig configures a Prober.
type ProberConfig struct {
	// Every is how often a paused fleet's credentials are read again.
	// Defaults to 30s.
	Every time.Duration
	// Probe is a signed read call; nil error means the credentials work.
	Probe func(ctx context.Context) error
	// Changed, when set, hears of state changes this prober made.
	Changed func(PauseState)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock decides when the pause is said again. Defaults to the wall clock.
	Clock Clock
	// Ticker defaults to maintenance.SystemTicker.
	Ticker maintenance.NewTicker
}

// Prober watches the pause: while the fleet is paused it reads with the
// credentials every interval (one worker at a time), moves the fleet to
// probing when that works, and says once a minute that deletions are
// paused and why. It is a maintenance.Service: the first probe comes one
// interval after Start.
type Prober struct {
	s       *PauseStore
	cfg     ProberConfig
	lastLog time.Time
	loop    maintenance.Loop
}

// NewProber returns a Prober on s.
func NewProber(s *PauseStore, cfg ProberConfig) *Prober {
	if cfg.Every <= 0 {
		cfg.Every = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Clock = Or(cfg.Clock)
	p := &Prober{s: s, cfg: cfg}
	p.loop = maintenance.Loop{Every: cfg.Every, Delayed: true, Pass: p.Once, Ticker: cfg.Ticker}
	return p
}

// Start probes every interval until Stop.
func (p *Prober) Start(ctx context.Context) error { return p.loop.Start(ctx) }

// Stop ends the probing.
func (p *Prober) Stop() { p.loop.Stop() }

// Once probes if the fleet is paused and no other worker probed within the
// interval.
func (p *Prober) Once(ctx context.Context) {
	st, err := p.s.Status(ctx)
	if err != nil || st.State != Paused || st.Manual {
		return
	}
	if now := p.cfg.Clock.Now(); now.Sub(p.lastLog) >= time.Minute {
		p.cfg.Logger.Error("deletions are paused for the whole fleet; batches wait in the queue, nothing is dead-lettered",
			"reason", st.Reason, "since", st.Since.UTC().Format(time.RFC3339), "failed_canaries", st.Tries,
			"lift", "fix the credentials (workers resume by themselves), or: qfpurge pause lift")
		p.lastLog = now
	}
	ok, err := p.s.rdb.SetNX(ctx, keyProbe, "1", p.cfg.Every-time.Second/2).Result()
	if err != nil || !ok || p.cfg.Probe == nil {
		return
	}
	if err := p.cfg.Probe(ctx); err != nil {
		p.cfg.Logger.Warn("credentials probe failed; deletions stay paused", "err", err)
		return
	}
	if err := p.s.Probe(ctx); err != nil {
		return
	}
	p.cfg.Logger.Info("credentials probe succeeded: one delete call will test them before the fleet resumes")
	if p.cfg.Changed != nil {
		p.cfg.Changed(Probing)
	}
}
