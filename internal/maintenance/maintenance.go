// Package maintenance gives the worker's background loops one shape, as
// river's internal/maintenance: each is a Service, started and stopped by
// the worker in one place, and most are a Loop that runs one pass now and
// then on every tick until stopped. Ticks come from an injected Ticker, so
// tests decide when a pass runs instead of sleeping.
package maintenance

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Service is one background loop of a worker. Start returns once the
// service runs (an error: it does not run); Stop ends it and returns once
// its goroutines have. Stop is safe to call more than once, and on a
// service that never started.
type Service interface {
	Start(ctx context.Context) error
	Stop()
}

// Ticker delivers ticks, like time.Ticker.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// NewTicker makes a Ticker that ticks every d.
type NewTicker func(d time.Duration) Ticker

type systemTicker struct{ t *time.Ticker }

func (s systemTicker) C() <-chan time.Time { return s.t.C }
func (s systemTicker) Stop()               { s.t.Stop() }

// SystemTicker is time.NewTicker as a Ticker.
func SystemTicker(d time.Duration) Ticker { return systemTicker{time.NewTicker(d)} }

// ErrStarted is returned by Start on a running service.
var ErrStarted = errors.New("maintenance: service already started")

// Loop runs Pass once when started (unless Delayed), then on every tick of
// Every, until Stop or the start context ends. Pass must return when its
// ctx is done. A Loop is a Service; the zero Every is not allowed.
type Loop struct {
	// Every is the time between passes.
	Every time.Duration
	// Delayed skips the pass at start: the first one comes at the first tick.
	Delayed bool
	// Pass is one round of the service's work.
	Pass func(ctx context.Context)
	// Ticker defaults to SystemTicker.
	Ticker NewTicker

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs the loop in a goroutine of its own.
func (l *Loop) Start(ctx context.Context) error {
	if l.Every <= 0 || l.Pass == nil {
		return errors.New("maintenance: a loop needs Every and Pass")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return ErrStarted
	}
	newTicker := l.Ticker
	if newTicker == nil {
		newTicker = SystemTicker
	}
	ctx, l.cancel = context.WithCancel(ctx)
	done := make(chan struct{})
	l.done = done
	t := newTicker(l.Every)
	go func() {
		defer close(done)
		defer t.Stop()
		if !l.Delayed {
			l.Pass(ctx)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
			}
			if ctx.Err() != nil {
				return
			}
			l.Pass(ctx)
		}
	}()
	return nil
}

// Stop ends the loop and waits for its pass under way to return.
func (l *Loop) Stop() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel, l.done = nil, nil
	l.mu.Unlock()
	if done == nil {
		return
	}
	cancel()
	<-done
}

// Group starts services in order and stops them in the reverse order.
type Group struct {
	mu      sync.Mutex
	started []Service
}

// Start starts each service in turn; on an error it stops the ones it
// started and returns the error.
func (g *Group) Start(ctx context.Context, services ...Service) error {
	for _, s := range services {
		if err := s.Start(ctx); err != nil {
			g.Stop()
			return err
		}
		g.mu.Lock()
		g.started = append(g.started, s)
		g.mu.Unlock()
	}
	return nil
}

// Stop stops every started service, the last started first.
func (g *Group) Stop() {
	g.mu.Lock()
	started := g.started
	g.started = nil
	g.mu.Unlock()
	for i := len(started) - 1; i >= 0; i-- {
		started[i].Stop()
	}
}
