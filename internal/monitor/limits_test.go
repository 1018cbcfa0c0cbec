package monitor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestSlowAndIdleClientsCannotStarve: connections that send nothing, send
// half a request or sit idle are closed by the timeouts, no more than
// MaxConns are open at once, and /healthz still answers.
func TestSlowAndIdleClientsCannotStarve(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // /healthz never calls it
	defer rdb.Close()
	s, err := New(rdb, asynq.NewInspectorFromRedisClient(rdb), NewMetrics(nil, nil, nil),
		Config{Addr: "127.0.0.1:0", MaxConns: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.srv.ReadHeaderTimeout, s.srv.ReadTimeout, s.srv.IdleTimeout = 200*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	counting := &countingListener{Listener: s.ln}
	s.ln = counting
	s.Serve()
	defer s.Shutdown(context.Background())

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 10 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n") // never finished
		}
	}
	idle, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, idle)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("/healthz behind slow clients: %v", err)
	}
	resp.Body.Close()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("/healthz took %s behind slow clients", took)
	}
	// A keep-alive connection that asked once and then idles is closed too.
	_, _ = io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	for name, c := range map[string]net.Conn{"idle keep-alive connection": idle, "half a request": conns[0]} {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: still open after 3s, want the server to close it", name)
		}
	}
	if p := counting.peak.Load(); p > 4 {
		t.Errorf("%d connections open at once, over MaxConns 4", p)
	}
}

// countingListener records the most connections open at once. A connection
// counts as closed before the capped listener under it frees its slot, so
// the count never runs ahead of the cap.
type countingListener struct {
	net.Listener
	open, peak atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.open.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
