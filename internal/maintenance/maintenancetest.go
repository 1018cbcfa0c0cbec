package maintenance

import "time"

// ManualTicker is a Ticker a test ticks by hand: Tick delivers one tick
// and returns once the loop took it.
type ManualTicker struct {
	c       chan time.Time
	stopped chan struct{}
}

// NewManualTicker returns a ManualTicker and the NewTicker that hands it
// out, for Loop.Ticker.
func NewManualTicker() (*ManualTicker, NewTicker) {
	m := &ManualTicker{c: make(chan time.Time), stopped: make(chan struct{})}
	return m, func(time.Duration) Ticker { return m }
}

// C implements Ticker.
func (m *ManualTicker) C() <-chan time.Time { return m.c }

// Stop implements Ticker.
func (m *ManualTicker) Stop() {
	select {
	case <-m.stopped:
	default:
		close(m.stopped)
	}
}

// Tick delivers one tick; it reports false when the ticker was stopped
// before the loop took it.
func (m *ManualTicker) Tick() bool {
	select {
	case m.c <- time.Time{}:
		return true
	case <-m.stopped:
		return false
	}
}

// Stopped is closed once the loop stopped its ticker.
func (m *ManualTicker) Stopped() <-chan struct{} { return m.stopped }
