// Package monitor is the worker's operator listener: the asynqmon web UI
// under /monitoring/, a status page on /status, Prometheus metrics on
// /metrics, and /healthz and /readyz for orchestrators.
//
// asynqmon can delete and run tasks, so a listener beyond loopback must be
// given credentials (a bearer token, or a user and password for basic auth);
// New refuses one without. /healthz and /readyz never ask for credentials.
//
// A web page the operator opens must not be able to drive it either: a
// browser's cross-site request that changes anything is refused
// (http.CrossOriginProtection), and so is every request (health checks
// aside, and /metrics with valid credentials) naming a Host that is not the
// monitor's: an IP address, localhost, this machine's name, the name it
// listens on, or one of Config.Hosts. That stops DNS rebinding, where an
// attacker's name resolves to 127.0.0.1. Every connection has timeouts and their number is capped,
// so slow or idle clients cannot starve /readyz or the process.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/authtoken"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"golang.org/x/net/netutil"
)

// RootPath is where asynqmon is mounted.
const RootPath = "/monitoring"

// DefaultAddr is where the monitor listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8080"

// ErrNoCredentials is returned by New for a non-loopback address without
// credentials.
var ErrNoCredentials = errors.New("monitor: listening beyond loopback needs credentials")

// Config configures a Server.
type Config struct {
	// Addr is host:port to listen on. Defaults to DefaultAddr.
	Addr string
	// ReadOnly hides asynqmon's buttons that change tasks and queues.
	// Defaults to false.
	ReadOnly bool
	// Token, when set, is accepted as "Authorization: Bearer <Token>".
	// Defaults to "" (no bearer token).
	Token string
	// User and Password, when both set, are accepted as basic auth (what a
	// browser asks for). Defaults to "" (no basic auth).
	User, Password string
	// Hosts are further names the monitor may be reached by (a reverse
	// proxy's, a DNS name Prometheus scrapes), without port. Defaults to
	// none: IP addresses, localhost, os.Hostname() and Addr's host are
	// always accepted.
	Hosts []string
	// MaxConns caps the open connections. Defaults to 128.
	MaxConns int
	// ServerHost and ServerPID identify this process's Asynq server among
	// Inspector.Servers() for /readyz. Default to os.Hostname() and
	// os.Getpid(), which is what Asynq records.
	ServerHost string
	ServerPID  int
	// Notes, when set, returns lines /readyz adds to a ready answer
	// (start-up warnings): they inform, and do not make it unready.
	Notes func() []string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// QianfanAPI is the API the worker was configured with, shown on the
	// status page. Defaults to fleet.Auto.
	QianfanAPI fleet.APIMode
	// StatusEventCap bounds the events the status page reads. Defaults to
	// DefaultStatusEventCap.
	StatusEventCap int
	// Now is the status page's clock. Defaults to time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.ServerHost == "" {
		c.ServerHost, _ = os.Hostname()
		if c.ServerHost == "" {
			c.ServerHost = "unknown-host"
		}
	}
	if c.ServerPID == 0 {
		c.ServerPID = os.Getpid()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxConns == 0 {
		c.MaxConns = 128
	}
	if c.QianfanAPI == "" {
		c.QianfanAPI = fleet.Auto
	}
	if c.StatusEventCap <= 0 {
		c.StatusEventCap = DefaultStatusEventCap
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func tokens(t string) []string {
	if t == "" {
		return nil
	}
	return []string{t}
}

func (c Config) hasCredentials() bool { return c.Token != "" || (c.User != "" && c.Password != "") }

// CheckConfig reports what is wrong with cfg (defaults filled first):
// credentials missing beyond loopback, half of basic auth, a short token.
func CheckConfig(cfg Config) error { return cfg.withDefaults().validate() }

func (c Config) validate() error {
	if c.Token != "" {
		if err := authtoken.CheckTokens([]string{c.Token}); err != nil {
			return fmt.Errorf("monitor: QFPURGE_MONITOR_TOKEN is %d characters long; it must be at least %d", len(c.Token), authtoken.MinLen)
		}
	}
	loop, err := IsLoopback(c.Addr)
	if err != nil {
		return err
	}
	if !loop && !c.hasCredentials() {
		return fmt.Errorf("%w: %s is reachable from other machines and asynqmon can delete and run tasks; "+
			"set QFPURGE_MONITOR_TOKEN, or both QFPURGE_MONITOR_USER and QFPURGE_MONITOR_PASSWORD, or listen on 127.0.0.1",
			ErrNoCredentials, c.Addr)
	}
	if (c.User == "") != (c.Password == "") {
		return errors.New("monitor: set both the user and the password for basic auth, or neither")
	}
	for _, h := range c.Hosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			return fmt.Errorf("monitor: host %q: want a name such as qfpurge.example.com, without scheme or port", h)
		}
	}
	if c.MaxConns < 1 {
		return fmt.Errorf("monitor: MaxConns %d must be positive", c.MaxConns)
	}
	return nil
}

// IsLoopback reports whether a host:port listens on loopback only. An empty
// host (":8080") or 0.0.0.0 listens everywhere.
func IsLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("monitor: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// Server is the monitor listener.
type Server struct {
	cfg   Config
	rdb   redis.UniversalClient
	insp  *asynq.Inspector
	log   *slog.Logger
	srv   *http.Server
	ln    net.Listener
	done  chan struct{}
	creds *authtoken.Set
	hosts map[string]bool
}

// New checks cfg and builds the handler; Start listens. rdb is the shared
// client (asynqmon uses it too and never closes it), insp an Inspector on it.
func New(rdb redis.UniversalClient, insp *asynq.Inspector, m *Metrics, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if rdb == nil || insp == nil || m == nil {
		return nil, errors.New("monitor: a Redis client, an Inspector and Metrics are required")
	}
	s := &Server{cfg: cfg, rdb: rdb, insp: insp, log: cfg.Logger, creds: authtoken.NewSet(tokens(cfg.Token), cfg.User, cfg.Password)}
	ui := asynqmon.New(asynqmon.Options{
		RootPath:         RootPath,
		RedisConnOpt:     sharedConn{rdb},
		ReadOnly:         cfg.ReadOnly,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(FormatPayload),
		ResultFormatter:  asynqmon.ResultFormatterFunc(FormatResult),
	})
	mux := http.NewServeMux()
	mux.Handle(RootPath+"/", s.auth(ui))
	mux.Handle("GET "+StatusPath, s.auth(http.HandlerFunc(s.status)))
	mux.Handle("GET "+RootPath, http.RedirectHandler(RootPath+"/", http.StatusMovedPermanently))
	metrics := promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      promLogger{s.log},
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, RootPath+"/", http.StatusFound)
	})
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("monitor: cross-origin request refused", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	// Health checks come from orchestrators by whatever name they use; they
	// change nothing and show nothing worth a rebinding attack.
	top := http.NewServeMux()
	top.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	top.HandleFunc("GET /readyz", s.ready)
	top.Handle("GET /metrics", s.metricsRoute(metrics))
	top.Handle("/", s.checkHost(cop.Handler(mux)))
	s.hosts = allowedHosts(cfg)
	s.srv = &http.Server{
		Handler:           top,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	return s, nil
}

// allowedHosts are the names besides IP addresses that requests may carry.
func allowedHosts(cfg Config) map[string]bool {
	hosts := map[string]bool{"localhost": true}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts[strings.ToLower(h)] = true
	}
	if h, _, err := net.SplitHostPort(cfg.Addr); err == nil && h != "" {
		hosts[strings.ToLower(h)] = true
	}
	for _, h := range cfg.Hosts {
		hosts[strings.ToLower(strings.TrimSuffix(h, "."))] = true
	}
	return hosts
}

// metricsRoute serves /metrics to a scraper that holds the monitor's
// credentials under any host name (Prometheus scrapes by DNS name, and a
// rebinding page has no credentials); without them the Host is checked as
// for the UI.
func (s *Server) metricsRoute(h http.Handler) http.Handler {
	checked := s.checkHost(s.auth(h))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.creds.Empty() && s.creds.Allows(r) {
			h.ServeHTTP(w, r)
			return
		}
		checked.ServeHTTP(w, r)
	})
}

// checkHost refuses a Host header that names none of the monitor's names:
// a page whose own name was made to resolve to this machine (DNS
// rebinding) sends its own name.
func (s *Server) checkHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
		if net.ParseIP(host) == nil && !s.hosts[host] {
			s.log.Warn("monitor: request for an unknown host refused (add it to QFPURGE_MONITOR_HOSTS if it is yours)", "host", r.Host, "path", r.URL.Path)
			http.Error(w, "unknown host: this monitor answers to its IP addresses, localhost and the names in QFPURGE_MONITOR_HOSTS", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Start listens on cfg.Addr and serves in the background.
func (s *Server) Start() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.Serve()
	return nil
}

// Listen binds cfg.Addr without serving yet, so a taken port is found before
// the worker takes any work.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("monitor: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = netutil.LimitListener(ln, max(s.cfg.MaxConns, 1))
	return nil
}

// Serve serves on the address Listen bound, in the background.
func (s *Server) Serve() {
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("monitor stopped", "err", err)
		}
	}()
	s.log.Info("monitor listening", "ui", "http://"+s.ln.Addr().String()+RootPath+"/",
		"metrics", "/metrics", "auth", s.authKind(), "read_only", s.cfg.ReadOnly)
}

// Addr is the address listened on, once started.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops the listener, letting requests in flight finish until ctx
// is done.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	if s.done == nil { // bound, never served
		return s.ln.Close()
	}
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

func (s *Server) authKind() string {
	var kinds []string
	if s.cfg.Token != "" {
		kinds = append(kinds, "bearer")
	}
	if s.cfg.User != "" {
		kinds = append(kinds, "basic")
	}
	if len(kinds) == 0 {
		return "none (loopback only)"
	}
	return strings.Join(kinds, "+")
}

// auth lets a request through when no credentials are configured, or when it
// carries one of the configured ones (authtoken.Set: constant time).
func (s *Server) auth(h http.Handler) http.Handler {
	if s.creds.Empty() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.creds.Allows(r) {
			h.ServeHTTP(w, r)
			return
		}
		if s.creds.HasBasic() {
			w.Header().Set("WWW-Authenticate", `Basic realm="qfpurge monitor", charset="UTF-8"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qfpurge monitor"`)
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	})
}

// ready answers 200 when Redis answers PING and this process's Asynq server
// is registered (its heartbeat, which also runs aggregation, is alive).
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.log.Warn("readyz: redis is not reachable", "err", err)
		http.Error(w, "redis is not reachable", http.StatusServiceUnavailable)
		return
	}
	servers, err := s.insp.Servers()
	if err != nil {
		s.log.Warn("readyz: listing asynq servers", "err", err)
		http.Error(w, "cannot list asynq servers", http.StatusServiceUnavailable)
		return
	}
	if st, err := fleet.NewPauseStore(s.rdb).Status(ctx); err != nil {
		http.Error(w, "cannot read the fleet's pause", http.StatusServiceUnavailable)
		return
	} else if st.State != fleet.Running {
		http.Error(w, fmt.Sprintf("deletions %s since %s: %s", st.State, st.Since.UTC().Format(time.RFC3339), st.Reason), http.StatusServiceUnavailable)
		return
	}
	for _, si := range servers {
		if si.Host == s.cfg.ServerHost && si.PID == s.cfg.ServerPID && si.Status == "active" {
			fmt.Fprintf(w, "ok: redis reachable, asynq server %s active\n", si.ID)
			if s.cfg.Notes != nil {
				for _, n := range s.cfg.Notes() {
					fmt.Fprintf(w, "warning: %s\n", n)
				}
			}
			return
		}
	}
	http.Error(w, "this worker's asynq server is not registered (not started, stopping, or its heartbeat expired)", http.StatusServiceUnavailable)
}

// sharedConn hands asynqmon the worker's own Redis client.
type sharedConn struct{ c redis.UniversalClient }

func (s sharedConn) MakeRedisClient() any { return s.c }

// promLogger sends promhttp's errors to slog.
type promLogger struct{ l *slog.Logger }

func (p promLogger) Println(v ...any) { p.l.Warn("metrics: " + fmt.Sprint(v...)) }
