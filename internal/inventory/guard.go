package inventory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// keyUsed holds the last complete service listing: each used model or
// version string ID → the names of the services that run it; field "@taken"
// is when that listing started (unix ms).
const keyUsed = "qfpurge:{inv}:used"

// Guard answers, right before a rule's deletion call, which IDs a custom
// service (in any status) uses. It reads every service (V2, complete or
// not at all) at most once per MaxAge for the whole fleet.
type Guard struct {
	rdb    redis.UniversalClient
	qc     *qianfan.Client
	store  *Store
	maxAge time.Duration
}

// NewGuard returns a Guard; maxAge <= 0 means 10 seconds.
func NewGuard(rdb redis.UniversalClient, qc *qianfan.Client, maxAge time.Duration) *Guard {
	if maxAge <= 0 {
		maxAge = 10 * time.Second
	}
	return &Guard{rdb: rdb, qc: qc, store: NewStore(rdb), maxAge: maxAge}
}

// Protected maps each of ids used by a service to the services' names. An
// int ID whose string form no listing has shown cannot be checked: it is
// reported as protected, with that reason. An error means the services
// could not be read completely: nothing may be deleted.
func (g *Guard) Protected(ctx context.Context, k modelid.Kind, ids []modelid.ID) (map[modelid.ID]string, error) {
	if err := g.refresh(ctx); err != nil {
		return nil, err
	}
	others, err := g.store.Other(ctx, k, ids)
	if err != nil {
		return nil, err
	}
	out := map[modelid.ID]string{}
	fields := make([]string, len(ids))
	for i, id := range ids {
		switch {
		case id.Type() == modelid.IDString:
			fields[i] = id.String()
		case others[id] != (modelid.ID{}):
			fields[i] = others[id].String()
		default:
			out[id] = "(unknown: no listing has shown this int ID's string form, so its services cannot be checked)"
		}
	}
	var ask []string
	for _, f := range fields {
		if f != "" {
			ask = append(ask, f)
		}
	}
	if len(ask) == 0 {
		return out, nil
	}
	vals, err := g.rdb.HMGet(ctx, keyUsed, ask...).Result()
	if err != nil {
		return nil, fmt.Errorf("inventory: read services: %w", err)
	}
	names := map[string]string{}
	for i, v := range vals {
		if s, ok := v.(string); ok && s != "" {
			names[ask[i]] = s
		}
	}
	for i, id := range ids {
		if n, ok := names[fields[i]]; ok {
			out[id] = n
		}
	}
	return out, nil
}

// refresh reads the services when the saved listing is older than maxAge.
func (g *Guard) refresh(ctx context.Context) error {
	ms, err := g.rdb.HGet(ctx, keyUsed, "@taken").Int64()
	if err == nil && time.Since(time.UnixMilli(ms)) < g.maxAge {
		return nil
	}
	started := time.Now()
	s, err := Read(ctx, g.qc, SourceServices)
	if err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	used := map[string][]string{}
	for _, svc := range s.Services {
		label := svc.Name + " (" + svc.ID + ", " + svc.Status + ")"
		for _, id := range append(append([]string{}, svc.Models...), svc.Versions...) {
			used[id] = append(used[id], label)
		}
	}
	args := []any{"@taken", strconv.FormatInt(started.UnixMilli(), 10)}
	for id, labels := range used {
		args = append(args, id, strings.Join(labels, ", "))
	}
	pipe := g.rdb.TxPipeline()
	pipe.Del(ctx, keyUsed)
	pipe.HSet(ctx, keyUsed, args...)
	_, err = pipe.Exec(ctx)
	return err
}
