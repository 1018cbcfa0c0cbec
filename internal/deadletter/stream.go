package deadletter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Stream is the Redis stream that records every dead ID. It has no cap,
// because Asynq's archive silently drops tasks past 10,000 per queue.
const Stream = "qfpurge:deadletters"

// Entry is one dead letter.
type Entry struct {
	EntryID  string       `json:"entry_id"`
	Kind     modelid.Kind `json:"kind"`
	ID       modelid.ID   `json:"id"`
	Code     int          `json:"code"`
	Message  string       `json:"message"`
	LogID    string       `json:"log_id,omitempty"`
	TaskID   string       `json:"task_id,omitempty"`
	Attempts int          `json:"attempts"`
	// API is the Qianfan API that answered: "v1" or "v2".
	API string `json:"api,omitempty"`
	// RequestedBy names who asked for the deletion, Key its request.
	RequestedBy string    `json:"requested_by,omitempty"`
	Key         string    `json:"key,omitempty"`
	At          time.Time `json:"time"`
}

// Reason renders the entry's cause, e.g. "500001 param invalid (log_id 2443985832)".
func (e Entry) Reason() string {
	s := e.Message
	if e.Code != 0 {
		s = strconv.Itoa(e.Code) + " " + s
	}
	if e.LogID != "" {
		s += " (log_id " + e.LogID + ")"
	}
	return s
}

// Fields are an entry's stream fields; the event stream uses the same ones
// plus "outcome".
func (e Entry) Fields() map[string]any {
	return map[string]any{
		"id":       e.ID.String(),
		"id_type":  string(e.ID.Type()),
		"kind":     string(e.Kind),
		"log_id":   e.LogID,
		"code":     strconv.Itoa(e.Code),
		"message":  e.Message,
		"task_id":  e.TaskID,
		"attempts": strconv.Itoa(e.Attempts),
		"api":      e.API,
		"time":     e.At.UTC().Format(time.RFC3339),
		// Who asked, on every event and dead letter.
		"requested_by": e.RequestedBy,
		"key":          e.Key,
	}
}

// Append queues the XADD of e on pipe, so a caller can record a dead ID and
// its dead letter in one round trip.
func Append(ctx context.Context, pipe redis.Pipeliner, e Entry) {
	f := e.Fields()
	f["outcome"] = "dead"
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: Stream, Values: f})
}

func parseEntry(m redis.XMessage) Entry {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	e := Entry{EntryID: m.ID, Kind: modelid.Kind(str("kind")), Message: str("message"), LogID: str("log_id"), TaskID: str("task_id"), API: str("api"),
		RequestedBy: str("requested_by"), Key: str("key")}
	e.ID, _ = modelid.Stored(str("id"), modelid.IDType(str("id_type")))
	e.Code, _ = strconv.Atoi(str("code"))
	e.Attempts, _ = strconv.Atoi(str("attempts"))
	e.At, _ = time.Parse(time.RFC3339, str("time"))
	return e
}

// Store reads and removes dead letters.
type Store struct{ rdb redis.UniversalClient }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// List returns at most count entries after the entry ID after ("" for the
// start), oldest first.
func (s *Store) List(ctx context.Context, after string, count int64) ([]Entry, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	msgs, err := s.rdb.XRangeN(ctx, Stream, start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, parseEntry(m))
	}
	return out, nil
}

// Count is the number of entries.
func (s *Store) Count(ctx context.Context) (int64, error) {
	n, err := s.rdb.XLen(ctx, Stream).Result()
	if err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}

// Delete removes entries by entry ID.
func (s *Store) Delete(ctx context.Context, entryIDs ...string) error {
	if len(entryIDs) == 0 {
		return nil
	}
	if err := s.rdb.XDel(ctx, Stream, entryIDs...).Err(); err != nil {
		return fmt.Errorf("remove dead letters: %w", err)
	}
	return nil
}

// Get returns the entries with the given entry IDs, in the order given.
// Unknown IDs are returned in missing; a malformed ID is an error.
func (s *Store) Get(ctx context.Context, entryIDs []string) (found []Entry, missing []string, err error) {
	for _, id := range entryIDs {
		before, err := predecessor(id)
		if err != nil {
			return nil, nil, err
		}
		// List reads after an exclusive start, so start just before id.
		es, err := s.List(ctx, before, 1)
		if err != nil {
			return nil, nil, err
		}
		if len(es) == 1 && es[0].EntryID == id {
			found = append(found, es[0])
		} else {
			missing = append(missing, id)
		}
	}
	return found, missing, nil
}

// Each calls fn for every entry present when it starts, oldest first, reading
// page entries at a time. Entries added meanwhile are left for the next call,
// so a requeued ID that dies again at once cannot make it loop.
func (s *Store) Each(ctx context.Context, page int64, fn func(Entry) error) error {
	n, err := s.Count(ctx)
	if err != nil {
		return err
	}
	after, seen := "", int64(0)
	for seen < n {
		es, err := s.List(ctx, after, min(page, n-seen))
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return nil
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
		}
		seen += int64(len(es))
		after = es[len(es)-1].EntryID
	}
	return nil
}

// All returns every entry present now (see Each).
func (s *Store) All(ctx context.Context, page int64) ([]Entry, error) {
	var out []Entry
	err := s.Each(ctx, page, func(e Entry) error { out = append(out, e); return nil })
	return out, err
}

// Export writes every entry present now as JSON lines and returns how many.
func (s *Store) Export(ctx context.Context, w io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	n := 0
	err := s.Each(ctx, 1000, func(e Entry) error {
		if err := enc.Encode(e); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}
