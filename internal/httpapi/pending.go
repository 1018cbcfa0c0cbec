package httpapi

import (
	"context"

	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// pendingEnqueuer enqueues through the producer, then marks the IDs pending.
type pendingEnqueuer struct {
	a      *API
	marked int
	warn   error
}

func (p *pendingEnqueuer) Enqueue(ctx context.Context, r enqueue.Request) (enqueue.Receipt, error) {
	if err := enqueue.Validate(r); err != nil {
		return enqueue.Receipt{}, err
	}
	ids := modelid.Dedupe(r.IDs)
	before, snapErr := p.a.d.Ledger.Snapshots(ctx, r.Kind, ids)
	rc, err := p.a.d.Producer.Enqueue(ctx, r)
	if err != nil {
		return rc, err
	}
	if snapErr != nil {
		p.warn = snapErr
		p.a.log.Warn("enqueued, but could not mark the IDs pending", "kind", r.Kind, "ids", len(ids), "err", snapErr)
		return rc, nil
	}
	ttl := p.a.cfg.PendingTTL
	if d := r.ProcessAt.Sub(p.a.cfg.Now()); d > 0 {
		ttl += d
	}
	n, err := p.a.d.Ledger.MarkPending(ctx, r.Kind, ids, before, ttl)
	p.marked += n
	if err != nil {
		// Enqueued all the same: the outcome will still be recorded.
		p.warn = err
		p.a.log.Warn("enqueued, but could not mark the IDs pending", "kind", r.Kind, "ids", len(r.IDs), "err", err)
	}
	return rc, nil
}
