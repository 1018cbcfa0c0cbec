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
	if w.add(modelid.IntID(4)) || w.len() != 3 {
		t.Errorf("window holds %d IDs, want 3", w.len())
	}
	// Each type has a window of its own; "1" the string is not 1 the int.
	if !w.add(modelid.StringID("am-1")) || w.add(modelid.StringID("am-1")) || w.len() != 4 {
		t.Errorf("string IDs: window holds %d IDs", w.len())
	}
}
