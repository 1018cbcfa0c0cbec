package policy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

// TestNameRegexMatchesWholeNames: the expression is compiled as written and
// must span the whole name; text that would escape a wrapper is refused.
func TestNameRegexMatchesWholeNames(t *testing.T) {
	t.Parallel()
	for _, src := range []string{`x)|(.*`, `a)|(b`, `(?:x)|(.*`} {
		if _, ps := parseRuleProblems(t, modelid.KindModel, "delete: {name_regex: '"+src+"'}"); len(ps) == 0 {
			t.Errorf("name_regex %q accepted: pasted into ^(?:…)$ it would match every name", src)
		}
	}
	for _, tt := range []struct {
		re, name string
		want     bool
	}{
		{`ci-.*`, "ci-run-1", true},
		{`ci-.*`, "prod-ci-run", false}, // not at the start
		{`ci-[0-9]+`, "ci-12x", false},  // not to the end
		{`a|ab`, "ab", true},            // leftmost-first would stop at "a"
		{`ab|a`, "a", true},
		{`x|.*`, "anything", true}, // a real alternation matches what it says
		{`exp-(chat|qa)`, "exp-chat", true},
		{`exp-(chat|qa)`, "exp-chatty", false},
		{`^ci-.*$`, "ci-a", true},
	} {
		r := parseRule(t, modelid.KindModel, fmt.Sprintf("delete: {name_regex: '%s', older_than: 1d}", tt.re))
		if got := wholeMatch(r.Delete[0].re, tt.name); got != tt.want {
			t.Errorf("/%s/ on %q: %v, want %v", tt.re, tt.name, got, tt.want)
		}
	}
}

// TestPreviewsAndBlockedRunsAreBounded: per rule only the newest previews
// and blocked runs are kept, with the short TTL; other runs keep theirs.
func TestPreviewsAndBlockedRunsAreBounded(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	s := NewStore(rdb, StoreConfig{KeepPreviews: 3, KeepBlocked: 2, ShortTTL: time.Hour})
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	put := func(id, rule string, st Status, n int) {
		rec := Record{ID: id, Rule: rule, Status: st, Created: at.Add(time.Duration(n) * time.Minute)}
		if err := s.putItems(ctx, id, []Item{{ID: "am-" + id}}); err != nil {
			t.Fatal(err)
		}
		if err := s.put(ctx, &rec); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		put(fmt.Sprintf("p%d", i), "r", StatusPreviewed, i)
		put(fmt.Sprintf("b%d", i), "r", StatusBlocked, i)
		put(fmt.Sprintf("e%d", i), "r", StatusEnqueued, i)
		put(fmt.Sprintf("o%d", i), "other", StatusPreviewed, i)
	}
	kept := map[string]bool{}
	recs, err := s.List(ctx, 100, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		kept[r.ID] = true
	}
	for i := range 6 {
		for prefix, keep := range map[string]int{"p": 3, "b": 2, "e": 6, "o": 3} {
			id := fmt.Sprintf("%s%d", prefix, i)
			want := i >= 6-keep
			if kept[id] != want {
				t.Errorf("%s kept %v, want %v", id, kept[id], want)
			}
			n, _ := rdb.Exists(ctx, itemsKey(id)).Result()
			if (n == 1) != want {
				t.Errorf("%s items kept %v, want %v", id, n == 1, want)
			}
		}
	}
	for id, long := range map[string]bool{"p5": false, "b5": false, "e5": true} {
		for _, key := range []string{recordKey(id), itemsKey(id)} {
			ttl, err := rdb.TTL(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got := ttl > time.Hour; got != long || ttl <= 0 {
				t.Errorf("%s TTL %s; want the long TTL: %v", key, ttl, long)
			}
		}
	}
}
