package fleet

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/maintenance"
)

// BeatConfig configures a MemberBeat.
type BeatConfig struct {
	// Clock stamps the join and the heartbeats. Defaults to the wall clock.
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Ticker defaults to maintenance.SystemTicker.
	Ticker maintenance.NewTicker
}

// MemberBeat is this worker's place in the fleet as a maintenance.Service:
// Start joins (an error wrapping ErrAPIConflict when the worker's API
// setting contradicts the fleet's) and renews the place every Heartbeat;
// Stop leaves.
type MemberBeat struct {
	s      *APIModeStore
	worker string
	cfg    BeatConfig
	loop   maintenance.Loop
	joined bool
}

// NewMemberBeat returns the service that keeps worker in s's fleet.
func NewMemberBeat(s *APIModeStore, worker string, cfg BeatConfig) *MemberBeat {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Clock = Or(cfg.Clock)
	b := &MemberBeat{s: s, worker: worker, cfg: cfg}
	b.loop = maintenance.Loop{Every: Heartbeat, Delayed: true, Pass: b.beat, Ticker: cfg.Ticker}
	return b
}

// Start joins the fleet and starts the heartbeat.
func (b *MemberBeat) Start(ctx context.Context) error {
	if err := b.s.Join(ctx, b.worker, b.cfg.Clock.Now()); err != nil {
		return err
	}
	b.joined = true
	return b.loop.Start(ctx)
}

// Stop ends the heartbeat and leaves the fleet.
func (b *MemberBeat) Stop() {
	b.loop.Stop()
	if !b.joined {
		return
	}
	b.joined = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.s.Leave(ctx, b.worker); err != nil {
		b.cfg.Logger.Warn("could not leave the fleet; others stop counting this worker within a minute", "err", err)
	}
}

func (b *MemberBeat) beat(ctx context.Context) {
	err := b.s.rdb.ZAdd(ctx, keyMembers, redis.Z{Score: float64(b.cfg.Clock.Now().UnixMilli()), Member: b.worker + " " + string(b.s.mode)}).Err()
	if err != nil && ctx.Err() == nil {
		b.cfg.Logger.Warn("could not renew this worker's place in the fleet", "err", err)
	}
}
