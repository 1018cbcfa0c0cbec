// Package deadletter requeues dead letters: the entries of
// tasks.DeadLetterStream. The HTTP API (POST /v1/deadletters/requeue) and
// cmd/dlq share it, so both requeue the same way.
//
// Requeuing an entry means: enqueue its ID again through the producer, then
// remove the entry from the stream, then delete the archived Asynq task that
// dead-lettered it (when its task ID is known and the task is still
// archived), so asynqmon does not offer a second replay of the same IDs.
// Workers skip IDs the ledger already knows as deleted, so requeuing twice
// is harmless.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/producer"
)

// Enqueuer enqueues deletions; *producer.Producer is one.
type Enqueuer interface {
	Enqueue(ctx context.Context, r producer.Request) (producer.Receipt, error)
}

// Archive is the part of *asynq.Inspector Requeue uses. It may be nil: then
// archived tasks are left alone.
type Archive interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
}

// Skipped is an entry that could not be requeued; it stays in the stream.
type Skipped struct {
	EntryID string `json:"entry_id"`
	Reason  string `json:"reason"`
}

// Result says what Requeue did.
type Result struct {
	// Requeued counts the entries enqueued again and removed from the stream.
	Requeued int `json:"requeued"`
	// Receipts are the producer's receipts, one per kind.
	Receipts []producer.Receipt `json:"receipts"`
	// ArchivedDeleted counts archived Asynq tasks deleted.
	ArchivedDeleted int `json:"archived_deleted"`
	// Skipped lists entries left in the stream (unreadable payloads).
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Requeue enqueues the IDs of entries again, one request per kind, then
// removes the entries from the dead-letter stream and deletes their archived
// Asynq tasks. Entries that name no valid kind and ID (dead-lettered
// unreadable payloads) are skipped and stay in the stream.
//
// If enqueuing fails nothing is removed. If removing fails after the IDs were
// enqueued, the error is returned with the result so far; requeuing the same
// entries again is safe.
func Requeue(ctx context.Context, l *tasks.Ledger, p Enqueuer, archive Archive, entries []tasks.DeadLetter) (Result, error) {
	res := Result{Receipts: []producer.Receipt{}}
	byKind := map[modelid.Kind][]tasks.DeadLetter{}
	for _, e := range entries {
		if _, err := modelid.ParseKind(string(e.Kind)); err != nil {
			res.Skipped = append(res.Skipped, Skipped{EntryID: e.EntryID, Reason: "no kind: " + e.Message})
			continue
		}
		if err := e.ID.Validate(); err != nil {
			res.Skipped = append(res.Skipped, Skipped{EntryID: e.EntryID, Reason: "no valid ID: " + err.Error()})
			continue
		}
		byKind[e.Kind] = append(byKind[e.Kind], e)
	}
	for _, k := range []modelid.Kind{modelid.KindModel, modelid.KindVersion} {
		es := byKind[k]
		if len(es) == 0 {
			continue
		}
		ids := make([]modelid.ID, len(es))
		for i, e := range es {
			ids[i] = e.ID
		}
		rc, err := p.Enqueue(ctx, producer.Request{Kind: k, IDs: ids})
		if err != nil {
			return res, fmt.Errorf("requeue %d %s dead letters: %w", len(es), k, err)
		}
		res.Receipts = append(res.Receipts, rc)
	}
	var done []string
	var taskIDs []string
	for _, k := range []modelid.Kind{modelid.KindModel, modelid.KindVersion} {
		for _, e := range byKind[k] {
			done = append(done, e.EntryID)
			if e.TaskID != "" && !slices.Contains(taskIDs, e.TaskID) {
				taskIDs = append(taskIDs, e.TaskID)
			}
		}
	}
	if err := l.DeleteDeadLetters(ctx, done...); err != nil {
		return res, fmt.Errorf("requeued %d dead letters but could not remove them from the stream: %w", len(done), err)
	}
	res.Requeued = len(done)
	if archive == nil {
		return res, nil
	}
	var errs []error
	for _, id := range taskIDs {
		info, err := archive.GetTaskInfo(tasks.Queue, id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("archived task %s: %w", id, err))
			continue
		}
		if info.State != asynq.TaskStateArchived {
			continue
		}
		if err := archive.DeleteTask(tasks.Queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			errs = append(errs, fmt.Errorf("delete archived task %s: %w", id, err))
			continue
		}
		res.ArchivedDeleted++
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("requeued %d dead letters; %w", res.Requeued, errors.Join(errs...))
	}
	return res, nil
}

// Get returns the entries with the given stream entry IDs, in the order
// given. Unknown IDs are returned in missing; a malformed ID is an error.
func Get(ctx context.Context, l *tasks.Ledger, entryIDs []string) (found []tasks.DeadLetter, missing []string, err error) {
	for _, id := range entryIDs {
		before, err := predecessor(id)
		if err != nil {
			return nil, nil, err
		}
		// DeadLetters reads after an exclusive start, so start just before id.
		dls, err := l.DeadLetters(ctx, before, 1)
		if err != nil {
			return nil, nil, err
		}
		if len(dls) == 1 && dls[0].EntryID == id {
			found = append(found, dls[0])
		} else {
			missing = append(missing, id)
		}
	}
	return found, missing, nil
}

// All returns every entry present now, paging through the stream. Entries
// added while it runs are left for the next call, so a requeued ID that dies
// again at once cannot make it loop.
func All(ctx context.Context, l *tasks.Ledger, page int64) ([]tasks.DeadLetter, error) {
	n, err := l.DeadLetterCount(ctx)
	if err != nil {
		return nil, err
	}
	var out []tasks.DeadLetter
	after := ""
	for int64(len(out)) < n {
		dls, err := l.DeadLetters(ctx, after, min(page, n-int64(len(out))))
		if err != nil {
			return nil, err
		}
		if len(dls) == 0 {
			break
		}
		out = append(out, dls...)
		after = dls[len(dls)-1].EntryID
	}
	return out, nil
}
