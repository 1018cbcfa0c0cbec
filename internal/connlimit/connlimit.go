// Package connlimit caps the connections a listener hands out, so that
// idle or slow clients of one of the worker's HTTP listeners (the monitor,
// the API) cannot use up the process's file descriptors, which Redis and
// the other listener need too. Connections beyond the cap wait in the
// kernel's backlog until one closes; the servers' timeouts make sure one
// does.
package connlimit

import (
	"net"
	"sync"
)

// Listener is a net.Listener with at most n connections open at once.
type Listener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Wrap caps ln at n open connections (n < 1 means 1).
func Wrap(ln net.Listener, n int) *Listener {
	return &Listener{Listener: ln, sem: make(chan struct{}, max(n, 1)), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &conn{Conn: c, release: func() { <-l.sem }}, nil
}

// Close stops Accept, including one waiting for a slot.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
