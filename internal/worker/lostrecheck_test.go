package worker_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/deadletter"
	"github.com/qfpurge/qfpurge/internal/enqueue"
	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
	"github.com/qfpurge/qfpurge/internal/worker"
	"github.com/qfpurge/qfpurge/internal/worker/workertest"
)

// hangUpDeletes serves the fake, but hangs up without an answer (and
// without running it, as a reset does) the delete requests carrying
// needle whose ordinal (1, 2, ...) is in hang.
type hangUpDeletes struct {
	fake   *qianfantest.Server
	needle string
	hang   map[int]bool
	mu     sync.Mutex
	seen   int
}

func (h *hangUpDeletes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == qianfan.PathBatchDeleteModels {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.mu.Lock()
		hang := false
		if strings.Contains(string(body), h.needle) {
			h.seen++
			hang = h.hang[h.seen]
		}
		h.mu.Unlock()
		if hang {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
	}
	h.fake.ServeHTTP(w, r)
}

// TestLostRecheckAnswerStaysDead: an ID that never existed, whose call and
// then whose recheck call (alone) both lose their answer, is dead, not
// presumed. A detail call showed it missing before its first call, so no
// lost call can have deleted it. This is the sequence that made
// TestPipeline1000IDs end an invalid ID presumed when a reset struck a
// recheck call.
func TestLostRecheckAnswerStaysDead(t *testing.T) {
	// Known failure of internal/tasks (ends presumed): a recheck batch
	// takes no detail call and inherits none of its parent's proof of
	// absence, so its own lost answer cannot be settled. Remove this skip
	// with the fix in the handler.
	t.Skip("fails until a recheck batch keeps the proof that its IDs were missing before the lost call")
	t.Parallel()
	fake := qianfantest.New(qianfantest.Config{Inventory: workertest.Models(int64(1), int64(2))})
	const bad = 404404
	// The client sends a call again after a reset: the first attempt of
	// the first call and of the recheck call are hung up, their second
	// attempts answer 500001 (and read as possibly applied).
	h := &hangUpDeletes{fake: fake, needle: "404404", hang: map[int]bool{1: true, 3: true}}
	e := workertest.NewWithHandler(t, h)
	e.Fake = fake
	e.Start(t, func(c *worker.Config) { c.InventoryEvery = 10 * time.Minute })
	workertest.Eventually(t, time.Minute, "the first listing", func() bool {
		taken, err := inventory.NewStore(e.RDB).Taken(context.Background())
		return err == nil && !taken.IsZero()
	})
	ids := []modelid.ID{modelid.IntID(bad)}
	enqueueIDs(t, e, enqueue.Request{Kind: modelid.KindModel, IDs: ids})
	e.WaitSettled(t, ids, 2*time.Minute)
	recs, err := ledger.New(e.RDB, ledger.Config{}).LookupMany(context.Background(), modelid.KindModel, ids)
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].State != ledger.StateDead {
		t.Errorf("ID %d never existed: %s (%s), want dead", bad, recs[0].State, recs[0].Message)
	}
	h.mu.Lock()
	seen := h.seen
	h.mu.Unlock()
	if seen < 4 {
		t.Errorf("%d delete requests carried the ID, want at least 4 (two calls, each sent twice)", seen)
	}
	dls, err := deadletter.NewStore(e.RDB).All(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Code != 500001 || dls[0].LogID == "" {
		t.Errorf("dead letters %+v, want one with 500001 and a log_id", dls)
	}
}
