package enqueue

import (
	"testing"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// BenchmarkWindow adds 1,000,000 consecutive int IDs to a fresh window, as
// a file of IDs does.
func BenchmarkWindow(b *testing.B) {
	for b.Loop() {
		w := newWindow(1 << 20)
		for i := range int64(1_000_000) {
			w.add(modelid.IntID(10_000_000 + i))
		}
	}
}
