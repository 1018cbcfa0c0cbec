package worker

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Warning is something about the worker's surroundings an operator should
// fix, though the worker runs: found at start, logged at WARN, shown by
// /readyz (which stays ready) and as qfpurge_startup_warning{warning=Name} 1.
type Warning struct {
	// Name is the metric label: redis_no_auth, redis_no_persistence or
	// redis_embedded.
	Name    string
	Message string
}

// The warnings.
const (
	WarnRedisNoAuth        = "redis_no_auth"
	WarnRedisNoPersistence = "redis_no_persistence"
	WarnRedisEmbedded      = "redis_embedded"
)

// startupWarnings asks Redis how it is set up. A question Redis refuses
// (ACL and CONFIG are often denied to applications, and managed services
// rename them) answers "cannot tell", which warns of nothing.
func startupWarnings(ctx context.Context, rdb redis.UniversalClient, cfg Config, log *slog.Logger) []Warning {
	if cfg.Demo {
		return nil
	}
	if cfg.EmbeddedRedis {
		return []Warning{{WarnRedisEmbedded, "the worker runs on an in-memory Redis of its own (--embedded-redis): " +
			"every queued deletion, the ledger, the dead letters and the events are lost when it stops, and no other process can enqueue; " +
			"give it a real Redis (REDIS_URL)"}}
	}
	var out []Warning
	if open, known := redisOpen(ctx, rdb); known && open {
		out = append(out, Warning{WarnRedisNoAuth, "Redis lets anyone who reaches it in without a password (its default user is on with nopass): " +
			"anyone on the network can enqueue deletions, requeue dead letters or read the ledger; set a password (requirepass, or ACL users)"})
	}
	aof, save, known := redisPersistence(ctx, rdb)
	switch {
	case !known:
	case !aof && save == "":
		out = append(out, Warning{WarnRedisNoPersistence, "Redis keeps nothing on disk (appendonly no, save \"\"): " +
			"a Redis restart or crash loses every queued and scheduled deletion, the ledger, the dead letters and the events; " +
			"set appendonly yes (or at least RDB snapshots with save)"})
	case !aof:
		log.Info("Redis persists by RDB snapshots only: a crash loses what changed since the last snapshot "+
			"(deletions enqueued or outcomes recorded then); appendonly yes keeps them", "save", save)
	}
	return out
}

// redisOpen reports whether Redis's default user needs no password; known
// is false when Redis does not say.
func redisOpen(ctx context.Context, rdb redis.UniversalClient) (open, known bool) {
	v, err := rdb.Do(ctx, "ACL", "GETUSER", "default").Result()
	if err == nil {
		flags := userFlags(v)
		return slices.Contains(flags, "on") && slices.Contains(flags, "nopass"), flags != nil
	}
	if !strings.Contains(strings.ToLower(err.Error()), "unknown command") {
		return false, false // refused: cannot tell
	}
	// Redis before 6 has no ACL; its one password is requirepass.
	m, err := rdb.ConfigGet(ctx, "requirepass").Result()
	if err != nil {
		return false, false
	}
	pass, ok := m["requirepass"]
	return ok && pass == "", ok
}

// userFlags finds "flags" in ACL GETUSER's answer: a map under RESP3, a
// list of alternating names and values under RESP2. nil when absent.
func userFlags(v any) []string {
	var raw any
	switch m := v.(type) {
	case map[any]any:
		raw = m["flags"]
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			if m[i] == "flags" {
				raw = m[i+1]
			}
		}
	}
	list, ok := raw.([]any)
	if !ok {
		return nil
	}
	flags := []string{}
	for _, f := range list {
		if s, ok := f.(string); ok {
			flags = append(flags, s)
		}
	}
	return flags
}

// redisPersistence reads appendonly and save; known is false when CONFIG
// is refused.
func redisPersistence(ctx context.Context, rdb redis.UniversalClient) (aof bool, save string, known bool) {
	a, err := rdb.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return false, "", false
	}
	s, err := rdb.ConfigGet(ctx, "save").Result()
	if err != nil {
		return false, "", false
	}
	av, ok1 := a["appendonly"]
	sv, ok2 := s["save"]
	return av == "yes", sv, ok1 && ok2
}

// warningGauge is qfpurge_startup_warning.
func warningGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "qfpurge_startup_warning",
		Help: "1 for each warning found at start: redis_no_auth, redis_no_persistence, redis_embedded. The worker runs regardless.",
	}, []string{"warning"})
}

// checkSurroundings finds the start-up warnings, logs them and shows them
// on the gauge; /readyz reads them with readyNotes.
func (w *Worker) checkSurroundings() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	warnings := startupWarnings(ctx, w.rdb, w.cfg, w.log)
	for _, wn := range warnings {
		w.log.Warn(wn.Message, "warning", wn.Name)
		w.warnGauge.WithLabelValues(wn.Name).Set(1)
	}
	w.warnMu.Lock()
	w.warnings = warnings
	w.warnMu.Unlock()
}

// readyNotes are the start-up warnings, for /readyz.
func (w *Worker) readyNotes() []string {
	w.warnMu.Lock()
	defer w.warnMu.Unlock()
	notes := make([]string, len(w.warnings))
	for i, wn := range w.warnings {
		notes[i] = fmt.Sprintf("%s: %s", wn.Name, wn.Message)
	}
	return notes
}
