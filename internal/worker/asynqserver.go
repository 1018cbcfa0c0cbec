package worker

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"
)

// asynqServer is the Asynq server as a maintenance.Service, so the worker
// starts and stops it in order with the loops: after them, and stopped
// before them (its running batches may still want a listing or a probe).
type asynqServer struct {
	srv *asynq.Server
	mux *asynq.ServeMux
}

func (a asynqServer) Start(context.Context) error {
	if err := a.srv.Start(a.mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	return nil
}

// Stop takes no new work and lets running batches finish for the shutdown
// timeout; unfinished ones go back to the queue.
func (a asynqServer) Stop() { a.srv.Shutdown() }
