package inventory

import (
	"context"

	"github.com/qfpurge/qfpurge/internal/maintenance"
)

// VerifyLoop is the verifier as a maintenance.Service: every Poll it takes
// the listings the fleet's waiting batches want (Verifier.Once).
type VerifyLoop struct{ loop maintenance.Loop }

// NewVerifyLoop returns v's loop.
func NewVerifyLoop(v *Verifier) *VerifyLoop {
	l := &VerifyLoop{}
	l.loop = maintenance.Loop{Every: v.cfg.Poll, Ticker: v.cfg.Ticker, Pass: func(ctx context.Context) {
		if err := v.Once(ctx); err != nil && ctx.Err() == nil {
			v.cfg.Logger.Warn("verification listing failed; the waiting batches keep waiting", "err", err)
		}
	}}
	return l
}

// Start takes wanted listings until Stop.
func (l *VerifyLoop) Start(ctx context.Context) error { return l.loop.Start(ctx) }

// Stop ends the loop once its listing under way, if any, returns.
func (l *VerifyLoop) Stop() { l.loop.Stop() }
