package monitor

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	var open, peak atomic.Int64
	s.srv.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			n := open.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
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
	_ = idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, idle); err != nil {
		t.Errorf("idle keep-alive connection: %v, want the server to close it", err)
	}
	_ = conns[0].SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, conns[0]); err != nil {
		t.Errorf("half a request: %v, want the server to close the connection", err)
	}
	if p := peak.Load(); p > 4 {
		t.Errorf("%d connections open at once, over MaxConns 4", p)
	}
}
