// Package redistest starts throwaway redis-server processes for tests that
// claim Redis behaviour. Each server listens on a free loopback port, keeps no
// data on disk, and is stopped when the test ends.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one running redis-server.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	cmd  *exec.Cmd
	dir  string
	// exited is closed once the process has exited.
	exited chan struct{}
}

// URL returns a redis:// URL for the server.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Client returns a go-redis client closed at the end of the test.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// Binary returns the path of redis-server, or "" when it is not installed.
func Binary() string {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return ""
	}
	return p
}

// MissingMessage tells a user why Redis-backed tests did not run.
const MissingMessage = "redis-server is not installed, so the tests against a real Redis did not run; " +
	"install it (Debian/Ubuntu: apt-get install redis-server, macOS: brew install redis) and run the tests again"

// Start starts a redis-server for t. Without redis-server the test is skipped,
// except under CI (CI=true), where a missing real Redis is a failure.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t)
}

// StartWith starts a redis-server for t as Start does, with further
// command-line arguments, which win over the defaults: "--requirepass", "pw"
// or "--appendonly", "yes". Client then needs its own credentials.
func StartWith(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(MissingMessage)
		}
		t.Skip(MissingMessage)
	}
	s, err := start(bin, t.TempDir(), args)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartProcess starts a redis-server outside a test (benchmarks, demos).
// The caller must call Stop.
func StartProcess(dir string) (*Server, error) {
	bin := Binary()
	if bin == "" {
		return nil, fmt.Errorf("%s", MissingMessage)
	}
	return start(bin, dir, nil)
}

func start(bin, dir string, extra []string) (*Server, error) {
	// The kernel picks the port; a tiny race with another process remains,
	// so retry a few times on a bind failure.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s, err := startOn(bin, dir, port, extra)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startOn(bin, dir string, port int, extra []string) (*Server, error) {
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--protected-mode", "yes",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, dir: dir}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("redis-server exited: %v: %s", err, tail(filepath.Join(dir, "redis.log")))
		default:
		}
		if ping(s.Addr) == nil {
			s.cmd = cmd
			s.exited = make(chan struct{})
			go func() { <-exited; close(s.exited) }()
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return nil, fmt.Errorf("redis-server on %s did not answer within 10s", s.Addr)
}

// Stop kills the server and returns once it has exited (up to 10 s), so
// a test that stops Redis talks to no Redis from then on.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		if s.exited != nil {
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
			}
		}
	}
}

func ping(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.Ping(ctx).Err()
	if err != nil && strings.HasPrefix(err.Error(), "NOAUTH") {
		return nil // up, and asking for a password
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
