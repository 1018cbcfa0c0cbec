package qianfan

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestIDSetIsExact checks the compact set against a map over IDs of every
// length up to past the chunked limit, each added several times, across
// many chunks and table doublings.
func TestIDSetIsExact(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []string
	for i := range 200_000 {
		ids = append(ids, fmt.Sprintf("am-%012x", i))
	}
	for n := range 300 {
		ids = append(ids, strings.Repeat("x", n), strings.Repeat("y", n)+"z")
	}
	var s idSet
	want := map[string]bool{}
	for range 3 * len(ids) {
		id := ids[rng.IntN(len(ids))]
		if got := s.add(id); got != !want[id] {
			t.Fatalf("add(%q) = %v after %d IDs, want %v", id, got, len(want), !want[id])
		}
		want[id] = true
	}
	for _, id := range ids {
		if s.add(id) != !want[id] {
			t.Fatalf("add(%q) of an ID added before reported it new", id)
		}
	}
	if len(s.chunks) < 2 || len(s.long) == 0 {
		t.Errorf("%d chunks, %d long IDs: the test does not exercise both stores", len(s.chunks), len(s.long))
	}
}
