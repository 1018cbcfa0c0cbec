package main

import (
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/monitor"
	"github.com/qfpurge/qfpurge/producer"
)

// deps are what the optional parts of the worker (monitor, scheduler, HTTP
// API) share with the pipeline.
type deps struct {
	rdb       redis.UniversalClient
	log       *slog.Logger
	ledger    *ledger.Ledger
	producer  *producer.Producer
	inspector *asynq.Inspector
	metrics   *monitor.Metrics
}

// startExtras starts the optional listeners and the scheduler that cfg
// enables. stop shuts them down before the Asynq server stops.
func startExtras(cfg config, d deps) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	stopMonitor, err := startMonitor(cfg, d)
	if err != nil {
		return nil, err // already says "monitor: ..."
	}
	stops = append(stops, stopMonitor)
	if cfg.APIAddr != "" {
		stopAPI, err := startAPI(cfg, d)
		if err != nil {
			stop()
			return nil, fmt.Errorf("http api: %w", err)
		}
		stops = append(stops, stopAPI)
	}
	if cfg.Schedule != "" {
		stopSchedule, err := startSchedule(cfg, d)
		if err != nil {
			stop()
			return nil, err // already says "schedule: ..." or "FILE:LINE: ..."
		}
		stops = append(stops, stopSchedule)
	}
	return stop, nil
}
