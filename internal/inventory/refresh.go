package inventory

import (
	"context"
	"time"

	"github.com/qfpurge/qfpurge/internal/maintenance"
)

// RefreshConfig configures a RefreshLoop.
type RefreshConfig struct {
	// Every is how often a complete listing is taken. Required.
	Every time.Duration
	// Versions reads every model's V1 detail too (the versions' pairs).
	Versions bool
	// V1, when set and false, leaves V1 out (the fleet deletes through V2).
	V1 func(context.Context) bool
}

// RefreshLoop is the inventory refresh as a maintenance.Service: it takes a
// complete listing (V1 and V2, so int↔string pairs are learnt; with
// Versions, every model's V1 detail too) every interval, one worker at a
// time, so evidence and pairs are at hand before they are needed.
type RefreshLoop struct {
	v    *Verifier
	cfg  RefreshConfig
	loop maintenance.Loop
}

// NewRefreshLoop returns the refresh through v.
func NewRefreshLoop(v *Verifier, cfg RefreshConfig) *RefreshLoop {
	r := &RefreshLoop{v: v, cfg: cfg}
	r.loop = maintenance.Loop{Every: cfg.Every, Ticker: v.cfg.Ticker, Pass: r.Once}
	return r
}

// Start refreshes now if the last listing is older than Every, then at
// every interval, until Stop.
func (r *RefreshLoop) Start(ctx context.Context) error { return r.loop.Start(ctx) }

// Stop ends the loop once its listing under way, if any, returns.
func (r *RefreshLoop) Stop() { r.loop.Stop() }

// Once takes a complete listing if the last one is older than Every and no
// other worker is taking one.
func (r *RefreshLoop) Once(ctx context.Context) {
	v := r.v
	taken, err := v.store.Taken(ctx)
	if err != nil || v.cfg.Clock.Now().Sub(taken) < r.cfg.Every {
		return
	}
	if ok, err := v.rdb.SetNX(ctx, keyLock, v.id, time.Minute).Result(); err != nil || !ok {
		return
	}
	stop := v.keepLock(ctx)
	src := SourceV2
	if r.cfg.V1 == nil || r.cfg.V1(ctx) {
		src |= SourceV1
		if r.cfg.Versions {
			src |= SourceV1Versions
		}
	}
	s, err := v.read(ctx, src)
	if err == nil {
		err = v.store.Save(ctx, s)
	}
	stop()
	v.rdb.Del(context.WithoutCancel(ctx), keyLock)
	if err != nil && ctx.Err() == nil {
		v.cfg.Logger.Warn("inventory refresh failed", "err", err)
	} else if err == nil {
		v.cfg.Logger.Info("inventory refreshed", "models", len(s.Models), "decides", s.Decides)
	}
}
