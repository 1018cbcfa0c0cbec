// Package deadletter owns qfpurge's dead letters: the entries of the Redis
// stream Stream, one per ID that Qianfan refused for good or that ran out of
// retries. It reads, exports, requeues and purges them for qfpurge dlq and the
// HTTP API, and gives the ledger the one way to append them.
//
// Requeuing an entry means: enqueue its ID again, then remove the entry
// from the stream, then delete the archived Asynq task that dead-lettered it
// (when its task ID is known and the task is still archived), so asynqmon
// does not offer a second replay of the same IDs. Workers skip IDs the ledger
// already knows as deleted, so requeuing twice is harmless.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hibiken/asynq"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Archive is the part of *asynq.Inspector that removes archived tasks. It may
// be nil: then archived tasks are left alone.
type Archive interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
}

// Skipped is an entry that could not be requeued; it stays in the stream.
type Skipped struct {
	EntryID string `json:"entry_id"`
	Reason  string `json:"reason"`
}

// Result says what Requeue did; R is the enqueuer's receipt.
type Result[R any] struct {
	// Requeued counts the entries enqueued again and removed from the stream.
	Requeued int `json:"requeued"`
	// Receipts are the enqueuer's receipts, one per kind.
	Receipts []R `json:"receipts"`
	// ArchivedDeleted counts archived Asynq tasks deleted.
	ArchivedDeleted int `json:"archived_deleted"`
	// Skipped lists entries left in the stream (unreadable payloads).
	Skipped []Skipped `json:"skipped,omitempty"`
}

// EnqueueFunc enqueues IDs of one kind and returns its receipt.
type EnqueueFunc[R any] func(ctx context.Context, k modelid.Kind, ids []modelid.ID) (R, error)

// Requeue enqueues the IDs of entries again, one call of enqueue per kind,
// then removes the entries from the stream and deletes their archived Asynq
// tasks. Entries that name no valid kind and ID (dead-lettered unreadable
// payloads) are skipped and stay in the stream.
//
// If enqueuing fails nothing is removed. If removing fails after the IDs were
// enqueued, the error is returned with the result so far; requeuing the same
// entries again is safe.
func Requeue[R any](ctx context.Context, s *Store, enqueue EnqueueFunc[R], archive Archive, entries []Entry) (Result[R], error) {
	res := Result[R]{Receipts: []R{}}
	byKind := map[modelid.Kind][]Entry{}
	for _, e := range entries {
		if _, err := modelid.ParseKind(string(e.Kind)); err != nil {
			res.Skipped = append(res.Skipped, Skipped{EntryID: e.EntryID, Reason: "no kind: " + e.Message})
			continue
		}
		if err := e.ID.ValidateFor(e.Kind); err != nil {
			res.Skipped = append(res.Skipped, Skipped{EntryID: e.EntryID, Reason: "no valid ID: " + err.Error()})
			continue
		}
		byKind[e.Kind] = append(byKind[e.Kind], e)
	}
	var done []Entry
	for _, k := range []modelid.Kind{modelid.KindModel, modelid.KindVersion} {
		es := byKind[k]
		if len(es) == 0 {
			continue
		}
		ids := make([]modelid.ID, len(es))
		for i, e := range es {
			ids[i] = e.ID
		}
		rc, err := enqueue(ctx, k, ids)
		if err != nil {
			return res, fmt.Errorf("requeue %s of kind %s: %w", modelid.Plural(len(es), "dead letter", "dead letters"), k, err)
		}
		res.Receipts = append(res.Receipts, rc)
		done = append(done, es...)
	}
	if err := s.Delete(ctx, entryIDs(done)...); err != nil {
		return res, fmt.Errorf("requeued %s but could not remove them from the stream: %w", modelid.Plural(len(done), "dead letter", "dead letters"), err)
	}
	res.Requeued = len(done)
	n, err := deleteArchived(archive, done)
	res.ArchivedDeleted = n
	if err != nil {
		return res, fmt.Errorf("requeued %s; %w", modelid.Plural(res.Requeued, "dead letter", "dead letters"), err)
	}
	return res, nil
}

// PurgeResult says what Purge did.
type PurgeResult struct {
	Purged          int `json:"purged"`
	ArchivedDeleted int `json:"archived_deleted"`
}

// Purge removes entries without requeuing them, and the archived Asynq tasks
// that hold them. Errors deleting archived tasks are returned, after the
// entries are gone.
func Purge(ctx context.Context, s *Store, archive Archive, entries []Entry) (PurgeResult, error) {
	if err := s.Delete(ctx, entryIDs(entries)...); err != nil {
		return PurgeResult{}, err
	}
	n, err := deleteArchived(archive, entries)
	return PurgeResult{Purged: len(entries), ArchivedDeleted: n}, err
}

func entryIDs(es []Entry) []string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.EntryID
	}
	return ids
}

// deleteArchived deletes the still-archived tasks of entries.
func deleteArchived(archive Archive, entries []Entry) (int, error) {
	if archive == nil {
		return 0, nil
	}
	var taskIDs []string
	for _, e := range entries {
		if e.TaskID != "" && !slices.Contains(taskIDs, e.TaskID) {
			taskIDs = append(taskIDs, e.TaskID)
		}
	}
	q := asynqlayout.Queue
	var errs []error
	deleted := 0
	for _, id := range taskIDs {
		info, err := archive.GetTaskInfo(q, id)
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
		if err := archive.DeleteTask(q, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			errs = append(errs, fmt.Errorf("delete archived task %s: %w", id, err))
			continue
		}
		deleted++
	}
	return deleted, errors.Join(errs...)
}
