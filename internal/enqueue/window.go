package enqueue

import (
	"math/bits"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// window remembers the last size distinct IDs of each type. Int IDs, the
// bulk of large inputs, go into an open-addressed table of bare int64s
// (about 24 MiB for 2^20 of them, no per-entry allocation and no map
// hashing); string IDs into a map.
type window struct {
	ints intRing
	strs ring[string]
}

func newWindow(size int) *window {
	size = max(size, 1)
	return &window{ints: newIntRing(size), strs: newRing[string](size)}
}

// add reports whether id is new, remembering it (and forgetting the oldest
// of its type once full).
func (w *window) add(id modelid.ID) bool {
	if n, ok := id.Int(); ok {
		return w.ints.add(n)
	}
	return w.strs.add(id.String())
}

func (w *window) len() int { return w.ints.n + len(w.strs.set) }

// intRing is a set of positive int64s that forgets its oldest member beyond
// size: linear probing in a power-of-two table kept at most half full (0
// marks a free slot), with backward-shift deletion so no tombstones pile up,
// and a ring of members in the order they came.
type intRing struct {
	slots []int64
	shift uint // 64 - log2(len(slots))
	n     int
	order []int64
	next  int
	size  int
}

// minSlots is the starting table: small requests stay small; the table
// doubles up to twice the window.
const minSlots = 1 << 10

func newIntRing(size int) intRing {
	r := intRing{size: size}
	r.resize(minSlots)
	return r
}

func (r *intRing) resize(n int) {
	old := r.slots
	r.slots = make([]int64, n)
	// The ring grows with the table, not by append's smaller steps.
	if c := min(n/2, r.size); c > cap(r.order) {
		r.order = append(make([]int64, 0, c), r.order...)
	}
	r.shift = uint(64 - bits.TrailingZeros(uint(n)))
	for _, k := range old {
		if k != 0 {
			i, _ := r.find(k)
			r.slots[i] = k
		}
	}
}

// home is k's first slot. IDs tend to come in runs (585, 586, ...): the
// high bits pick a block of 16 slots by Fibonacci hashing and the low 4
// bits a slot in it, so a run fills neighbouring slots (a cache line holds
// 8) while different runs spread out; at most 16 IDs share a block's hash.
func (r *intRing) home(k int64) int {
	block := (uint64(k>>4) * 0x9e3779b97f4a7c15) >> r.shift
	return int(block&^15 | uint64(k&15))
}

// find returns k's slot, or the free slot where the probe for k ends.
func (r *intRing) find(k int64) (int, bool) {
	mask := len(r.slots) - 1
	for i := r.home(k); ; i = (i + 1) & mask {
		switch r.slots[i] {
		case k:
			return i, true
		case 0:
			return i, false
		}
	}
}

func (r *intRing) add(k int64) bool {
	i, ok := r.find(k)
	if ok {
		return false
	}
	moved := false
	if len(r.order) == r.size {
		r.remove(r.order[r.next])
		r.order[r.next] = k
		r.next = (r.next + 1) % r.size
		moved = true
	} else {
		if 2*(r.n+1) > len(r.slots) {
			r.resize(2 * len(r.slots))
			moved = true
		}
		r.order = append(r.order, k)
	}
	if moved {
		i, _ = r.find(k)
	}
	r.slots[i] = k
	r.n++
	return true
}

// remove deletes k, shifting back the members after it that probed past
// its slot, so every member stays reachable from its home.
func (r *intRing) remove(k int64) {
	i, ok := r.find(k)
	if !ok {
		return
	}
	mask := len(r.slots) - 1
	for j := (i + 1) & mask; r.slots[j] != 0; j = (j + 1) & mask {
		// The member at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if h := r.home(r.slots[j]); (j-h)&mask >= (j-i)&mask {
			r.slots[i] = r.slots[j]
			i = j
		}
	}
	r.slots[i] = 0
	r.n--
}

// ring is a set that forgets its oldest member beyond size.
type ring[K comparable] struct {
	set  map[K]struct{}
	keys []K
	size int
	next int
}

func newRing[K comparable](size int) ring[K] {
	return ring[K]{set: map[K]struct{}{}, size: max(size, 1)}
}

func (r *ring[K]) add(k K) bool {
	if _, ok := r.set[k]; ok {
		return false
	}
	if len(r.keys) < r.size {
		r.keys = append(r.keys, k)
	} else {
		delete(r.set, r.keys[r.next])
		r.keys[r.next] = k
		r.next = (r.next + 1) % r.size
	}
	r.set[k] = struct{}{}
	return true
}
