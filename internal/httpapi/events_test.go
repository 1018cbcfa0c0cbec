package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/ledger"
)

// sseEvent is one dispatched server-sent event, or a comment.
type sseEvent struct {
	ID, Event, Data, Comment string
}

// sseReader parses text/event-stream.
type sseReader struct{ r *bufio.Reader }

func (s sseReader) next() (sseEvent, error) {
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if ev != (sseEvent{}) {
				return ev, nil
			}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			ev.Comment = value
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			ev.Data = value
		}
	}
}

type eventsBundle struct {
	testBundle
	srv  *http.Server
	base string
	done chan struct{}
}

// serveEvents serves the API on a real listener whose read and write
// timeouts are far shorter than the streams it serves.
func serveEvents(t *testing.T, ev EventsConfig) eventsBundle {
	t.Helper()
	b := setupWith(t, Config{Tokens: []string{tokenOld}, Events: ev}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: b.api, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}
	srv.RegisterOnShutdown(b.api.Close)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return eventsBundle{testBundle: b, srv: srv, base: "http://" + ln.Addr().String(), done: done}
}

func (b eventsBundle) open(t *testing.T, query, lastID string) (*http.Response, sseReader) {
	t.Helper()
	req, _ := http.NewRequest("GET", b.base+"/v1/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+tokenOld)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	// A bound on the whole stream, so a missing event fails the test.
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /v1/events%s: %d %s %s", query, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	r := sseReader{bufio.NewReader(resp.Body)}
	// The first block says where the stream starts.
	if ev, err := r.next(); err != nil || !strings.HasPrefix(ev.Comment, "events after ") {
		t.Fatalf("first block %+v, %v", ev, err)
	}
	return resp, r
}

func xadd(t *testing.T, rdb *redis.Client, fields map[string]any) string {
	t.Helper()
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: ledger.EventStream, Values: fields}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestEventsResumeExactlyOnce: 1,000 events are written while a client
// reads them; it goes away after 400 and comes back with Last-Event-ID; it
// receives every event once, in order.
func TestEventsResumeExactlyOnce(t *testing.T) {
	b := serveEvents(t, EventsConfig{Heartbeat: 50 * time.Millisecond, Block: 50 * time.Millisecond, MaxStreams: 2})
	const total = 1000
	// Events before the stream opens are not sent (no after): they are older.
	xadd(t, b.rdb, map[string]any{"n": "-1"})
	resp, r := b.open(t, "", "")

	written := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := 0; i < total; i += 10 {
			pipe := b.rdb.Pipeline()
			for j := i; j < i+10; j++ {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: ledger.EventStream, Values: map[string]any{"n": strconv.Itoa(j), "outcome": "deleted"}})
			}
			if _, err := pipe.Exec(ctx); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()

	next := 0
	last := ""
	receive := func(r sseReader, upTo int) {
		t.Helper()
		for next < upTo {
			ev, err := r.next()
			if err != nil {
				t.Fatalf("after %d events: %v", next, err)
			}
			if ev.Comment != "" {
				continue
			}
			var data map[string]string
			if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
				t.Fatalf("data %q: %v", ev.Data, err)
			}
			if data["n"] != strconv.Itoa(next) || ev.ID == "" || (last != "" && compareIDs(ev.ID, last) <= 0) {
				t.Fatalf("event %+v, want n=%d after %s", ev, next, last)
			}
			next, last = next+1, ev.ID
		}
	}
	receive(r, 400)
	resp.Body.Close()
	// The server notices the client went, and frees its slot.
	for i := 0; len(b.api.streams) != 0; i++ {
		if i == 500 {
			t.Fatal("the stream of a client that went away is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, r = b.open(t, "?after=0", last) // the header wins over ?after=
	receive(r, total)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	// Nothing more follows but heartbeats, until a new event.
	id := xadd(t, b.rdb, map[string]any{"n": "new"})
	for {
		ev, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Comment == "" {
			if ev.ID != id {
				t.Fatalf("after the 1,000: %+v, want %s", ev, id)
			}
			break
		}
	}
}

// TestEventsOutliveServerTimeouts: a stream stays open past the server's
// read and write timeouts (200ms), then ends at Shutdown, which does not
// wait for it.
func TestEventsOutliveServerTimeouts(t *testing.T) {
	b := serveEvents(t, EventsConfig{Heartbeat: 50 * time.Millisecond, Block: 20 * time.Millisecond})
	_, r := b.open(t, "", "")
	// 12 heartbeats of 50ms: past both timeouts.
	for beats := 0; beats < 12; {
		ev, err := r.next()
		if err != nil {
			t.Fatalf("after %d heartbeats: %v", beats, err)
		}
		if ev.Comment == "heartbeat" {
			beats++
		}
	}
	id := xadd(t, b.rdb, map[string]any{"outcome": "deleted"})
	if ev, err := r.next(); err != nil || ev.ID != id {
		t.Fatalf("after the timeouts: %+v %v, want event %s", ev, err, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (the stream did not end)", err)
	}
	for {
		if _, err := r.next(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Logf("stream ended with %v", err)
			}
			break
		}
	}
}

func TestEventsFiltersAndGaps(t *testing.T) {
	b := serveEvents(t, EventsConfig{Heartbeat: 50 * time.Millisecond, Block: 20 * time.Millisecond})
	first := xadd(t, b.rdb, map[string]any{"key": "a", "requested_by": "ci", "n": "1"})
	xadd(t, b.rdb, map[string]any{"key": "b", "requested_by": "ci", "n": "2"})
	xadd(t, b.rdb, map[string]any{"n": "3"}) // a fleet event: no key
	xadd(t, b.rdb, map[string]any{"key": "a", "requested_by": "ops", "n": "4"})
	xadd(t, b.rdb, map[string]any{"key": "a", "requested_by": "ci", "n": "5"})
	collect := func(r sseReader, n int) []string {
		var got []string
		for len(got) < n {
			ev, err := r.next()
			if err != nil {
				t.Fatal(err)
			}
			if ev.Comment == "" {
				var d map[string]string
				_ = json.Unmarshal([]byte(ev.Data), &d)
				got = append(got, ev.Event+d["n"])
			}
		}
		return got
	}
	_, r := b.open(t, "?after=0&key=a&requested_by=ci", "")
	if got := collect(r, 2); strings.Join(got, ",") != "1,5" {
		t.Errorf("key=a, requested_by=ci: %v, want 1,5", got)
	}
	_, r = b.open(t, "?after="+first, "")
	if got := collect(r, 4); strings.Join(got, ",") != "2,3,4,5" {
		t.Errorf("after the first: %v, want 2,3,4,5", got)
	}
	// Trim the first three away: a client resuming after the first may have
	// missed some, and is told so.
	if err := b.rdb.XTrimMaxLen(context.Background(), ledger.EventStream, 2).Err(); err != nil {
		t.Fatal(err)
	}
	_, r = b.open(t, "?after="+first, "")
	if got := collect(r, 3); strings.Join(got, ",") != "gap,4,5" {
		t.Errorf("after a trim: %v, want gap,4,5", got)
	}
	for _, q := range []string{"?after=x", "?after=1-x", "?after=-1"} {
		req, _ := http.NewRequest("GET", b.base+"/v1/events"+q, nil)
		req.Header.Set("Authorization", "Bearer "+tokenOld)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, resp.StatusCode)
		}
	}
}
