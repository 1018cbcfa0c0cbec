package enqueue

import (
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
	if w.add(modelid.IntID(4)) || len(w.set) != 3 {
		t.Errorf("window holds %d IDs, want 3", len(w.set))
	}
}
