package tasks

import (
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/retry"
)

// ThrottleError hands a batch back to Asynq without using up a retry;
// RetryDelay waits Wait.
type ThrottleError struct {
	Wait time.Duration
	Err  error
}

func (e *ThrottleError) Error() string { return "waiting: " + e.Err.Error() }
func (e *ThrottleError) Unwrap() error { return e.Err }

// deadError archives a task at once. Its text is only the reason, e.g.
// "500001 param invalid (log_id 2443985832)", which is what asynqmon and the
// asynq CLI show as the archived task's error.
type deadError struct{ reason string }

func (e deadError) Error() string { return e.reason }
func (e deadError) Unwrap() error { return asynq.SkipRetry }

// IsFailure tells Asynq which errors use up a retry: all but ThrottleError.
func IsFailure(err error) bool {
	_, waiting := errors.AsType[*ThrottleError](err)
	return !waiting
}

// RetryDelay is the Asynq RetryDelayFunc: retry.Tasks (5 s doubling to a
// 10 minute cap, ±20%); a ThrottleError waits what it says, ±20%.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if te, ok := errors.AsType[*ThrottleError](err); ok && te.Wait > 0 {
		return retry.Policy{Initial: te.Wait, Max: te.Wait, Jitter: retry.Tasks().Jitter}.Delay(0)
	}
	return retry.Tasks().Delay(n)
}

// throttleWait is how long a throttled batch waits in the queue. The client
// already backed off inside the call, so the queue waits longer.
func throttleWait(err error) time.Duration {
	if qe, ok := errors.AsType[*qianfan.Error](err); ok {
		if qe.RetryAfter > 0 {
			return max(qe.RetryAfter, time.Second)
		}
		if qe.Code == 17 { // daily limit: nothing will pass for a long while
			return time.Hour
		}
	}
	return 30 * time.Second
}
