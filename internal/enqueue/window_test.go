package enqueue

import (
	"math/rand/v2"
	"testing"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

func TestWindowForgetsTheOldest(t *testing.T) {
	t.Parallel()
	w := newWindow(3)
	for _, n := range []int64{1, 2, 3} {
		if !w.add(modelid.IntID(n)) {
			t.Fatalf("%d seen as a repeat", n)
		}
	}
	if w.add(modelid.IntID(2)) {
		t.Error("2 not seen as a repeat")
	}
	if !w.add(modelid.IntID(4)) || !w.add(modelid.IntID(1)) {
		t.Error("4, then 1 (forgotten) not taken")
	}
	if w.add(modelid.IntID(4)) || w.len() != 3 {
		t.Errorf("window holds %d IDs, want 3", w.len())
	}
	// Each type has a window of its own; "1" the string is not 1 the int.
	if !w.add(modelid.StringID("am-1")) || w.add(modelid.StringID("am-1")) || w.len() != 4 {
		t.Errorf("string IDs: window holds %d IDs", w.len())
	}
}

// TestIntRingMatchesAReference drives the int table through growth,
// eviction and backward shifts against a map and a queue.
func TestIntRingMatchesAReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 7, 600, 5000} {
		r := newIntRing(size)
		ref := map[int64]bool{}
		var order []int64
		for step := range 200_000 {
			// A narrow range makes repeats, clusters and evictions common.
			k := rng.Int64N(int64(3*size)) + 1
			if step%3 == 0 {
				k = int64(rng.Uint64()>>1) + 1
			}
			want := !ref[k]
			if want {
				if len(order) == size {
					delete(ref, order[0])
					order = order[1:]
				}
				ref[k] = true
				order = append(order, k)
			}
			if got := r.add(k); got != want {
				t.Fatalf("size %d, step %d: add(%d) = %v, want %v", size, step, k, got, want)
			}
		}
		if r.n != len(ref) {
			t.Errorf("size %d: table holds %d, want %d", size, r.n, len(ref))
		}
		for k := range ref {
			if _, ok := r.find(k); !ok {
				t.Fatalf("size %d: %d is lost", size, k)
			}
		}
	}
}
