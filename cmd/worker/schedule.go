package main

import (
	"log/slog"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	// Time zones for schedules even in images without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/qfpurge/qfpurge/internal/schedule"
	"github.com/qfpurge/qfpurge/producer"
)

// registerSchedule handles scheduled-purge triggers. Every worker registers
// it, with or without --schedule: a trigger enqueued by one replica's
// scheduler may be picked up by any worker on the queue.
func registerSchedule(mux *asynq.ServeMux, rdb redis.UniversalClient, prod *producer.Producer, log *slog.Logger) {
	mux.Handle(schedule.TypeScheduledPurge,
		schedule.NewHandler(rdb, prod, schedule.HandlerConfig{Logger: log.With("component", "schedule")}))
}

// startSchedule runs --schedule with Asynq's PeriodicTaskManager. A bad file
// fails here, naming its lines.
func startSchedule(cfg config, d deps) (stop func(), err error) {
	level, _ := parseLevel(cfg.LogLevel)
	log := d.log.With("component", "schedule")
	s, err := schedule.Start(d.rdb, schedule.Config{
		Path:          cfg.Schedule,
		SyncInterval:  cfg.ScheduleSync,
		Logger:        log,
		AsynqLogger:   asynqLogger{log},
		AsynqLogLevel: asynqLevel(level),
	})
	if err != nil {
		return nil, err
	}
	return s.Shutdown, nil
}
