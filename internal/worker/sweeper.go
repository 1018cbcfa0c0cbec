package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/maintenance"
)

// sweeper repairs what Asynq leaves behind after crashes, as a
// maintenance.Service: at start and every interval it re-registers
// stranded groups (sweepGroups) and records dead letters for batches Asynq
// archived without the handler (reconcileArchive).
type sweeper struct {
	rdb  redis.UniversalClient
	l    *ledger.Ledger
	insp *asynq.Inspector
	log  *slog.Logger
	loop maintenance.Loop
}

func newSweeper(rdb redis.UniversalClient, l *ledger.Ledger, every time.Duration, ticker maintenance.NewTicker, log *slog.Logger) *sweeper {
	s := &sweeper{rdb: rdb, l: l, insp: asynq.NewInspectorFromRedisClient(rdb), log: log}
	s.loop = maintenance.Loop{Every: every, Ticker: ticker, Pass: s.once}
	return s
}

func (s *sweeper) Start(ctx context.Context) error { return s.loop.Start(ctx) }
func (s *sweeper) Stop()                           { s.loop.Stop() }

func (s *sweeper) once(ctx context.Context) {
	if added, err := sweepGroups(ctx, s.rdb); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("group sweep failed", "err", err)
		}
	} else if len(added) > 0 {
		s.log.Warn("re-registered stranded groups", "groups", added)
	}
	if n, err := reconcileArchive(ctx, s.rdb, s.insp, s.l); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("archive reconciliation failed", "err", err)
		}
	} else if n > 0 {
		s.log.Error("recorded dead letters for batches Asynq archived after a crash", "ids", n)
	}
}
