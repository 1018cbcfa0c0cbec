package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/fleetlimit"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Environment variables of the monitor. Credentials come only from the
// environment, never from flags (which other users can read in ps).
const (
	envMonitorAddr     = "QFPURGE_MONITOR_ADDR"
	envMonitorToken    = "QFPURGE_MONITOR_TOKEN"
	envMonitorUser     = "QFPURGE_MONITOR_USER"
	envMonitorPassword = "QFPURGE_MONITOR_PASSWORD"
)

// monitorConfig is the monitor part of the worker's config.
type monitorConfig struct {
	Addr     string
	ReadOnly bool
	Token    string
	User     string
	Password string
	// explicit is true when the address was given by flag or environment:
	// then failing to listen stops the worker. The default address only
	// warns, so a second worker on the same host still starts.
	explicit bool
}

func (m *monitorConfig) addFlags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&m.Addr, "monitor-addr", or(getenv(envMonitorAddr), monitor.DefaultAddr),
		"serve asynqmon (/monitoring/), /metrics, /healthz and /readyz here (env "+envMonitorAddr+"); off when empty; "+
			"beyond loopback it needs "+envMonitorToken+" or "+envMonitorUser+"/"+envMonitorPassword)
	fs.BoolVar(&m.ReadOnly, "monitor-readonly", false, "asynqmon shows tasks but cannot delete, run or archive them")
}

func (m *monitorConfig) resolve(fs *flag.FlagSet, getenv func(string) string) {
	m.Token, m.User, m.Password = getenv(envMonitorToken), getenv(envMonitorUser), getenv(envMonitorPassword)
	m.explicit = getenv(envMonitorAddr) != ""
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "monitor-addr" {
			m.explicit = true
		}
	})
}

// LogValue shows which credentials are set, never their values.
func (m monitorConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", m.Addr),
		slog.Bool("read_only", m.ReadOnly),
		slog.Bool("token_set", m.Token != ""),
		slog.Bool("basic_auth_set", m.User != "" && m.Password != ""),
	)
}

// newFleetLimiter returns the fleet-wide QPS limiter for the Qianfan client,
// or nil (no cap) when --qps is 0. Its waits go to the metrics.
func newFleetLimiter(rdb redis.UniversalClient, cfg config, met *monitor.Metrics) (qianfan.Limiter, error) {
	if cfg.QPS <= 0 {
		return nil, nil
	}
	l, err := fleetlimit.New(rdb, fleetlimit.Config{
		QPS:     cfg.QPS,
		Key:     fleetlimit.Key(cfg.BaseURL, cfg.AccessKey),
		Observe: met.LimiterWait,
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// startMonitor starts the monitor listener when --monitor-addr is set.
func startMonitor(cfg config, d deps) (stop func(), err error) {
	m := cfg.Monitor
	if m.Addr == "" {
		return func() {}, nil
	}
	log := d.log.With("component", "monitor")
	srv, err := monitor.New(d.rdb, d.inspector, d.metrics, monitor.Config{
		Addr: m.Addr, ReadOnly: m.ReadOnly, Token: m.Token, User: m.User, Password: m.Password, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		if !m.explicit && errors.Is(err, syscall.EADDRINUSE) {
			log.Warn("monitor not started: the default address is taken; set --monitor-addr to another address, or to empty to turn the monitor off",
				"addr", m.Addr, "err", err)
			return func() {}, nil
		}
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("monitor shutdown", "err", err)
		}
	}, nil
}
