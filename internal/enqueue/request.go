package enqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Every request is recorded under its key, given or generated, so it can
// be followed (ReadRequest): a
// hash of who asked, when, the kind and the time asked for, and a hash
// of its IDs, one field per enqueued batch ("int/0": "1,2,3"), so a
// repeat of the request writes the same fields again.
const (
	keyReqPrefix = "qfpurge:req:"
	reqIDsSuffix = ":ids"
)

// record notes the batches ws of the request (and, the first time, the
// request itself) for ReadRequest. One round trip.
func (s *Stream) record(ctx context.Context, ws []*write) error {
	if s.r.Key == "" || len(ws) == 0 {
		return nil
	}
	ttl := keyTTL
	if d := time.Until(s.r.ProcessAt); d > 0 {
		ttl += d
	}
	head, ids := keyReqPrefix+s.r.Key, keyReqPrefix+s.r.Key+reqIDsSuffix
	pipe := s.p.rdb.Pipeline()
	if !s.noted {
		pipe.HSetNX(ctx, head, "at", time.Now().UnixMilli())
		pipe.HSetNX(ctx, head, "kind", string(s.r.Kind))
		if s.r.generated {
			pipe.HSetNX(ctx, head, "generated", "1")
		}
		if s.r.RequestedBy != "" {
			pipe.HSetNX(ctx, head, "by", s.r.RequestedBy)
		}
		if !s.r.ProcessAt.IsZero() {
			pipe.HSetNX(ctx, head, "process_at", s.r.ProcessAt.UnixMilli())
		}
		if s.r.Run != "" {
			pipe.HSetNX(ctx, head, "run", s.r.Run)
		}
		pipe.Expire(ctx, head, ttl)
	}
	fields := make([]any, 0, 2*len(ws))
	for _, w := range ws {
		// Every request is recorded: no string per ID.
		b := make([]byte, 0, 12*len(w.ids))
		for i, id := range w.ids {
			if i > 0 {
				b = append(b, ',')
			}
			if n, ok := id.Int(); ok {
				b = strconv.AppendInt(b, n, 10)
			} else {
				b = append(b, id.String()...)
			}
		}
		fields = append(fields, w.b.IDType+"/"+strconv.Itoa(w.n), b)
	}
	pipe.HSet(ctx, ids, fields...)
	pipe.Expire(ctx, ids, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record request %q: %w", s.r.Key, err)
	}
	s.noted = true
	return nil
}

// ErrNoRequest: no request with that key is recorded (never made, made
// before every request got a key, or older than its record's 30 days).
var ErrNoRequest = errors.New("no request with that key is recorded")

// RequestStates are the states a request's IDs are counted in, in order.
var RequestStates = []ledger.State{ledger.StatePending, ledger.StateDeleted, ledger.StatePresumed, ledger.StateDead,
	ledger.StateProtected, ledger.StateCancelled, ledger.StateRefused}

// RequestStatus is what is known of one request.
type RequestStatus struct {
	Key string `json:"key"`
	// KeyGenerated: the key was generated for a request given none.
	KeyGenerated bool         `json:"key_generated,omitempty"`
	RequestedBy  string       `json:"requested_by,omitempty"`
	At           time.Time    `json:"at"`
	Kind         modelid.Kind `json:"kind"`
	ProcessAt    time.Time    `json:"process_at,omitzero"`
	Run          string       `json:"run,omitempty"`
	// IDs counts the request's distinct IDs; States counts them by state
	// (every state of RequestStates, zeros included).
	IDs    int            `json:"ids"`
	States map[string]int `json:"states"`
	// CancelledBy is set when the request was cancelled by its key.
	CancelledBy string `json:"cancelled_by,omitempty"`
	// ByState lists the IDs in each state, at most ReadRequest's list of
	// each; Truncated says some state had more.
	ByState   map[string][]modelid.ID `json:"ids_by_state,omitempty"`
	Truncated bool                    `json:"truncated,omitempty"`
}

// ReadRequest reads the request with key and counts its IDs by state: an
// ID's state is its ledger record's (pending when it has none), except a
// record another request wrote before this one was made, which says
// nothing of this request yet (pending), unless it is a deletion (the
// model is gone whoever asked). list > 0 also lists up to list IDs of
// each state.
func ReadRequest(ctx context.Context, rdb redis.UniversalClient, l *ledger.Ledger, key string, list int) (RequestStatus, error) {
	m, err := rdb.HGetAll(ctx, keyReqPrefix+key).Result()
	if err != nil {
		return RequestStatus{}, fmt.Errorf("read request %q: %w", key, err)
	}
	if len(m) == 0 {
		return RequestStatus{}, ErrNoRequest
	}
	st := RequestStatus{Key: key, KeyGenerated: m["generated"] == "1", RequestedBy: m["by"], Kind: modelid.Kind(m["kind"]), Run: m["run"], States: map[string]int{}}
	if ms, err := strconv.ParseInt(m["at"], 10, 64); err == nil {
		st.At = time.UnixMilli(ms).UTC()
	}
	if ms, err := strconv.ParseInt(m["process_at"], 10, 64); err == nil {
		st.ProcessAt = time.UnixMilli(ms).UTC()
	}
	for _, s := range RequestStates {
		st.States[string(s)] = 0
	}
	if list > 0 {
		st.ByState = map[string][]modelid.ID{}
	}
	cancelled, err := l.Cancelled(ctx, []string{key})
	if err != nil {
		return st, err
	}
	st.CancelledBy = cancelled[key]
	seen := map[modelid.ID]bool{}
	var cursor uint64
	for {
		kv, next, err := rdb.HScan(ctx, keyReqPrefix+key+reqIDsSuffix, cursor, "", 200).Result()
		if err != nil {
			return st, fmt.Errorf("read request %q: %w", key, err)
		}
		var ids []modelid.ID
		for i := 1; i < len(kv); i += 2 {
			for raw := range strings.SplitSeq(kv[i], ",") {
				id, err := modelid.ParseID(raw)
				if err != nil || seen[id] {
					continue
				}
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if err := st.count(ctx, l, ids, list); err != nil {
			return st, err
		}
		if cursor = next; cursor == 0 {
			return st, nil
		}
	}
}

// count adds ids' states to st.
func (st *RequestStatus) count(ctx context.Context, l *ledger.Ledger, ids []modelid.ID, list int) error {
	for lo := 0; lo < len(ids); lo += 1000 {
		recs, err := l.LookupMany(ctx, st.Kind, ids[lo:min(lo+1000, len(ids))])
		if err != nil {
			return err
		}
		for _, r := range recs {
			s := r.State
			switch {
			case s == "":
				s = ledger.StatePending
			case r.Key == st.Key, s.Gone():
			case r.At.Before(st.At.Truncate(time.Second)):
				s = ledger.StatePending // another request's earlier outcome
			}
			st.IDs++
			st.States[string(s)]++
			if list > 0 {
				if len(st.ByState[string(s)]) < list {
					st.ByState[string(s)] = append(st.ByState[string(s)], r.ID)
				} else {
					st.Truncated = true
				}
			}
		}
	}
	return nil
}
