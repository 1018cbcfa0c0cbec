package monitor

import (
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/asynqlayout"
	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/policy"
)

// StatusPath is the status page: what the fleet is doing, read from Redis
// on each request.
const StatusPath = "/status"

// DefaultStatusEventCap bounds the events one status page reads.
const DefaultStatusEventCap = 20_000

// statusPage is the data one rendering shows. Each part is read on its own:
// one that cannot be read says so, and the others still show.
type statusPage struct {
	Now  time.Time
	Root string

	Pause    fleet.PauseStatus
	PauseErr error

	API       apiStatus
	APIErr    error
	Queue     *queueCounts
	QueueErr  error
	Dead      int64
	DeadErr   error
	Events    eventCounts
	EventsErr error
	Runs      []policy.Record
	RunsErr   error
}

type apiStatus struct {
	Configured, Effective fleet.APIMode
	SwitchReason          string
	SwitchedAt            time.Time
}

type queueCounts struct {
	Pending, Active, Scheduled, Retry, Archived, Completed, Aggregating int
	Latency                                                             time.Duration
}

// eventCounts are the outcomes of qfpurge:events in the last hour and day.
type eventCounts struct {
	Rows []eventRow
	// Fleet holds the fleet's own events (paused, resumed, switched), newest
	// first.
	Fleet []fleetEvent
	// Read is how many entries were read; Cut says the cap stopped the read
	// before the day's start, Oldest is the oldest entry read then.
	Read   int
	Cut    bool
	Oldest time.Time
	// HourCut: the cap stopped the read within the last hour too.
	HourCut bool
	Cap     int
}

type eventRow struct {
	State     string
	Hour, Day int
}

type fleetEvent struct {
	At               time.Time
	Outcome, Message string
}

// idStates are the per-ID outcomes, in the order shown.
var idStates = []ledger.State{ledger.StateDeleted, ledger.StatePresumed, ledger.StateDead, ledger.StateProtected, ledger.StateCancelled, ledger.StateRefused}

//go:embed status.html
var statusHTML string

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return now.Sub(t).Truncate(time.Second).String() + " ago"
	},
}).Parse(statusHTML))

// status serves the status page.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	p := s.readStatus(ctx)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// No script, no foreign resource: the page is text and inline style.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := statusTmpl.Execute(w, p); err != nil {
		s.log.Warn("monitor: rendering the status page", "err", err)
	}
}

func (s *Server) readStatus(ctx context.Context) statusPage {
	p := statusPage{Now: s.cfg.Now(), Root: RootPath}
	p.Pause, p.PauseErr = fleet.NewPauseStore(s.rdb).Status(ctx)

	mode := fleet.NewAPIModeStore(s.rdb, s.cfg.QianfanAPI)
	p.API.Configured = mode.Configured()
	if p.API.Effective, p.APIErr = mode.Effective(ctx); p.APIErr == nil {
		p.API.SwitchReason, p.API.SwitchedAt, p.APIErr = mode.Switched(ctx)
	}

	if qi, err := s.insp.GetQueueInfo(asynqlayout.Queue); err != nil {
		p.QueueErr = err
	} else {
		p.Queue = &queueCounts{Pending: qi.Pending, Active: qi.Active, Scheduled: qi.Scheduled, Retry: qi.Retry,
			Archived: qi.Archived, Completed: qi.Completed, Aggregating: qi.Aggregating, Latency: qi.Latency}
	}
	p.Dead, p.DeadErr = deadletter.NewStore(s.rdb).Count(ctx)
	p.Events, p.EventsErr = countEvents(ctx, s.rdb, p.Now, s.cfg.StatusEventCap)
	p.Runs, p.RunsErr = policy.NewStore(s.rdb, policy.StoreConfig{}).List(ctx, 15, time.Time{})
	return p
}

// eventPage is how many entries one XREVRANGE reads.
const eventPage = 1000

// countEvents reads qfpurge:events newest first back to a day before now,
// at most limit entries, and counts the outcomes per window. Entry IDs carry
// the time Redis added them, so the range itself selects the day.
func countEvents(ctx context.Context, rdb redis.UniversalClient, now time.Time, limit int) (eventCounts, error) {
	ec := eventCounts{Cap: limit}
	hour, day := now.Add(-time.Hour), now.Add(-24*time.Hour)
	counts := map[string]*eventRow{}
	for _, st := range idStates {
		counts[string(st)] = &eventRow{State: string(st)}
	}
	end, start := "+", strconv.FormatInt(day.UnixMilli(), 10)
	for ec.Read < limit {
		n := min(eventPage, limit-ec.Read)
		msgs, err := rdb.XRevRangeN(ctx, ledger.EventStream, end, start, int64(n)).Result()
		if err != nil {
			return ec, fmt.Errorf("reading %s: %w", ledger.EventStream, err)
		}
		for _, m := range msgs {
			at := entryTime(m.ID)
			ec.Read++
			ec.Oldest = at
			outcome, _ := m.Values["outcome"].(string)
			if id, _ := m.Values["id"].(string); id == "" {
				if len(ec.Fleet) < 10 {
					msg, _ := m.Values["message"].(string)
					ec.Fleet = append(ec.Fleet, fleetEvent{At: at, Outcome: outcome, Message: msg})
				}
				continue
			}
			row := counts[outcome]
			if row == nil {
				row = &eventRow{State: outcome}
				counts[outcome] = row
			}
			row.Day++
			if !at.Before(hour) {
				row.Hour++
			}
		}
		if len(msgs) < n {
			break
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
	if ec.Read >= limit {
		// The cap stopped the read: it is cut unless the next entry in the
		// window does not exist.
		more, err := rdb.XRevRangeN(ctx, ledger.EventStream, end, start, 1).Result()
		if err != nil {
			return ec, fmt.Errorf("reading %s: %w", ledger.EventStream, err)
		}
		ec.Cut = len(more) > 0
		ec.HourCut = ec.Cut && !ec.Oldest.Before(hour)
	}
	for _, st := range idStates {
		ec.Rows = append(ec.Rows, *counts[string(st)])
		delete(counts, string(st))
	}
	others := slices.Collect(maps.Keys(counts)) // outcomes this page does not know
	slices.Sort(others)
	for _, o := range others {
		ec.Rows = append(ec.Rows, *counts[o])
	}
	return ec, nil
}

// entryTime is the millisecond time in a stream entry ID ("<ms>-<seq>").
func entryTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
