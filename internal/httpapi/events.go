package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/ledger"
)

// EventsConfig configures GET /v1/events.
type EventsConfig struct {
	// Heartbeat is how often an idle stream sends a comment, so proxies and
	// clients see it alive. Defaults to 15s.
	Heartbeat time.Duration
	// Block is the longest one XREAD waits for new events: how soon a stream
	// notices a server shutdown. Defaults to 2s.
	Block time.Duration
	// WriteWindow is how long one write to the client may take; a client
	// that reads nothing for that long is dropped. Each write moves the
	// connection's deadline, so the server's WriteTimeout does not end a
	// stream. Defaults to 30s.
	WriteWindow time.Duration
	// MaxStreams caps the open streams; each holds a Redis connection of
	// the worker's pool while it waits. Defaults to 8.
	MaxStreams int
	// Batch is the most events read per XREAD. Defaults to 100.
	Batch int64
}

func (c EventsConfig) withDefaults() EventsConfig {
	if c.Heartbeat == 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.Block == 0 {
		c.Block = 2 * time.Second
	}
	if c.WriteWindow == 0 {
		c.WriteWindow = 30 * time.Second
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = 8
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	return c
}

func (c EventsConfig) validate() error {
	// XREAD BLOCK 0 would wait forever.
	if c.Heartbeat < time.Millisecond || c.Block < time.Millisecond || c.WriteWindow < time.Millisecond {
		return errors.New("httpapi: Events.Heartbeat, Block and WriteWindow must be at least 1ms")
	}
	if c.MaxStreams < 1 || c.Batch < 1 {
		return errors.New("httpapi: Events.MaxStreams and Batch must be positive")
	}
	return nil
}

// Event fields GET /v1/events filters on (?key=, ?requested_by=).
var eventFilters = []string{"key", "requested_by"}

// events streams qfpurge:events as server-sent events. Each event's id is
// its stream entry ID; a client resumes after the last one it saw with
// Last-Event-ID (or ?after=) and gets everything after it exactly once,
// since XREAD returns the entries after an ID in order. Without either it
// starts with events added from now on; ?after=0 starts with the oldest
// kept.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after := q.Get("after")
	if h := r.Header.Get("Last-Event-ID"); h != "" {
		// The header is what EventSource sends on reconnecting, with the
		// URL, and so the ?after= of the first connection, unchanged.
		after = h
	}
	switch after {
	case "", "$":
		after = "$"
	case "0":
		after = "0-0"
	default:
		if _, _, err := deadletter.ParseEntryID(after); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("event ID %q (Last-Event-ID or after): want a stream entry ID such as 1732680000000-0, or 0 for every event kept", after), nil)
			return
		}
	}
	filters := map[string]string{}
	for _, f := range eventFilters {
		if v := q.Get(f); v != "" {
			filters[f] = v
		}
	}
	select {
	case a.streams <- struct{}{}:
		defer func() { <-a.streams }()
	default:
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%d event streams are open, the most this server serves; retry later", cap(a.streams)), nil)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-a.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	if after == "$" {
		// "$" again at each read would miss what is added between reads.
		last, err := a.d.Redis.XRevRangeN(ctx, ledger.EventStream, "+", "-", 1).Result()
		if err != nil {
			writeError(w, http.StatusInternalServerError, "read the event stream: "+err.Error(), nil)
			return
		}
		after = "0-0"
		if len(last) == 1 {
			after = last[0].ID
		}
	}
	s := &eventStream{a: a, w: w, rc: http.NewResponseController(w)}
	// The server's ReadTimeout is no concern: net/http clears the read
	// deadline once it watches the connection for the client going away.
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(s, "retry: 3000\n: events after %s\n\n", after)
	if gap := a.trimmedAfter(ctx, after); gap != "" {
		data, _ := json.Marshal(map[string]string{"after": after, "oldest": gap})
		fmt.Fprintf(s, "event: gap\ndata: %s\n\n", data)
	}
	if !s.flush() {
		return
	}
	beat := time.Now()
	for {
		res, err := a.d.Redis.XRead(ctx, &redis.XReadArgs{Streams: []string{ledger.EventStream, after}, Count: a.cfg.Events.Batch, Block: a.cfg.Events.Block}).Result()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			a.log.Warn("event stream ended: cannot read the events", "err", err)
			fmt.Fprintf(s, ": cannot read the events; resume with Last-Event-ID %s\n\n", after)
			s.flush()
			return
		}
		sent := false
		for _, st := range res {
			for _, m := range st.Messages {
				after = m.ID
				if !matches(m.Values, filters) {
					continue
				}
				data, _ := json.Marshal(m.Values)
				fmt.Fprintf(s, "id: %s\ndata: %s\n\n", m.ID, data)
				sent = true
			}
		}
		if !sent && time.Since(beat) >= a.cfg.Events.Heartbeat {
			io.WriteString(s, ": heartbeat\n\n")
			sent = true
		}
		if sent {
			if !s.flush() {
				return
			}
			beat = time.Now()
		}
	}
}

// matches reports whether an event has every filtered field's value.
func matches(v map[string]any, filters map[string]string) bool {
	for k, want := range filters {
		if got, _ := v[k].(string); got != want {
			return false
		}
	}
	return true
}

// trimmedAfter returns the oldest kept entry's ID when the entry after
// names is no longer kept (trimmed to EventsMaxLen): events that followed
// it may have gone with it. "" otherwise, or when Redis cannot tell.
func (a *API) trimmedAfter(ctx context.Context, after string) string {
	if after == "0-0" {
		return ""
	}
	info, err := a.d.Redis.XInfoStream(ctx, ledger.EventStream).Result()
	if err != nil || info.FirstEntry.ID == "" || compareIDs(info.FirstEntry.ID, after) <= 0 {
		return ""
	}
	return info.FirstEntry.ID
}

// compareIDs orders two well-formed stream entry IDs.
func compareIDs(x, y string) int {
	xm, xs, _ := deadletter.ParseEntryID(x)
	ym, ys, _ := deadletter.ParseEntryID(y)
	return cmp.Or(cmp.Compare(xm, ym), cmp.Compare(xs, ys))
}

// eventStream writes to the client, each write under its own deadline,
// and remembers the first failure.
type eventStream struct {
	a   *API
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func (s *eventStream) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.a.cfg.Events.WriteWindow))
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// flush sends what was written; false when the client is gone.
func (s *eventStream) flush() bool {
	if s.err == nil {
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.a.cfg.Events.WriteWindow))
		s.err = s.rc.Flush()
	}
	return s.err == nil
}
