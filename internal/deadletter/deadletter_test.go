package deadletter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
)

func TestMain(m *testing.M) {
	// bce-sdk-go's logger starts its writer goroutine in an init func.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"))
}

func TestPredecessor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "1767323404123-5", want: "1767323404123-4"},
		{in: "1767323404123-0", want: "1767323404122-18446744073709551615"},
		{in: "0-1", want: "0-0"},
		{in: "0-0", bad: true},
		{in: "123", bad: true},
		{in: "a-1", bad: true},
		{in: "1-", bad: true},
		{in: "-1-1", bad: true},
	} {
		got, err := predecessor(tc.in)
		if tc.bad {
			if !errors.Is(err, ErrBadEntryID) {
				t.Errorf("predecessor(%q) = %q, %v; want ErrBadEntryID", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("predecessor(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

type request struct {
	Kind modelid.Kind
	IDs  []modelid.ID
}

type fakeEnqueuer struct {
	reqs []request
	err  error
}

func (f *fakeEnqueuer) enqueue(_ context.Context, k modelid.Kind, ids []modelid.ID) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	f.reqs = append(f.reqs, request{k, ids})
	return len(ids), nil
}

// add appends entries as the ledger does.
func add(t *testing.T, rdb redis.UniversalClient, es ...Entry) {
	t.Helper()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	for _, e := range es {
		Append(ctx, pipe, e)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

type fakeArchive struct {
	states  map[string]asynq.TaskState
	deleted []string
}

func (f *fakeArchive) GetTaskInfo(_, id string) (*asynq.TaskInfo, error) {
	s, ok := f.states[id]
	if !ok {
		return nil, asynq.ErrTaskNotFound
	}
	return &asynq.TaskInfo{ID: id, State: s}, nil
}

func (f *fakeArchive) DeleteTask(_, id string) error {
	f.deleted = append(f.deleted, id)
	return nil
}

func TestRequeue(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	l := NewStore(rdb)
	at := time.Now()
	add(t, rdb,
		Entry{Kind: modelid.KindModel, ID: modelid.IntID(1), TaskID: "a", At: at},
		Entry{Kind: modelid.KindModel, ID: modelid.StringID("am-s1"), TaskID: "a", At: at},
		Entry{Kind: modelid.KindVersion, ID: modelid.IntID(2), TaskID: "b", At: at},
		Entry{Kind: modelid.KindModel, ID: modelid.IntID(3), TaskID: "gone", At: at},
		Entry{Kind: "", ID: modelid.StringID("unreadable"), TaskID: "c", At: at},
	)
	all, err := l.All(ctx, 2)
	if err != nil || len(all) != 5 {
		t.Fatalf("All: %d entries, %v", len(all), err)
	}

	// Enqueuing fails: nothing is removed.
	if _, err := Requeue(ctx, l, (&fakeEnqueuer{err: errors.New("redis down")}).enqueue, nil, all); err == nil {
		t.Fatal("Requeue with a failing enqueuer: no error")
	}
	if n, _ := l.Count(ctx); n != 5 {
		t.Fatalf("%d entries after a failed requeue, want 5", n)
	}

	enq := &fakeEnqueuer{}
	arch := &fakeArchive{states: map[string]asynq.TaskState{"a": asynq.TaskStateArchived, "b": asynq.TaskStatePending}}
	res, err := Requeue(ctx, l, enq.enqueue, arch, all)
	if err != nil {
		t.Fatal(err)
	}
	wantReqs := []request{
		{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1), modelid.StringID("am-s1"), modelid.IntID(3)}},
		{Kind: modelid.KindVersion, IDs: []modelid.ID{modelid.IntID(2)}},
	}
	if diff := cmp.Diff(wantReqs, enq.reqs, cmp.AllowUnexported(modelid.ID{})); diff != "" {
		t.Errorf("requests (-want +got)\n%s", diff)
	}
	// Only the archived task is deleted; "b" is not archived, "gone" is unknown.
	if diff := cmp.Diff([]string{"a"}, arch.deleted); diff != "" {
		t.Errorf("deleted tasks (-want +got)\n%s", diff)
	}
	if res.Requeued != 4 || res.ArchivedDeleted != 1 || len(res.Skipped) != 1 || res.Skipped[0].EntryID != all[4].EntryID {
		t.Errorf("result %+v", res)
	}
	left, err := l.All(ctx, 100)
	if err != nil || len(left) != 1 || left[0].EntryID != all[4].EntryID {
		t.Fatalf("left %+v, %v; want only the unreadable entry", left, err)
	}

	found, missing, err := l.Get(ctx, []string{all[4].EntryID, all[0].EntryID})
	if err != nil || len(found) != 1 || found[0].EntryID != all[4].EntryID || len(missing) != 1 || missing[0] != all[0].EntryID {
		t.Fatalf("Get: %+v %v %v", found, missing, err)
	}
	if _, _, err := l.Get(ctx, []string{"x"}); !errors.Is(err, ErrBadEntryID) {
		t.Fatalf("Get(x): %v, want ErrBadEntryID", err)
	}
}

type failingArchive struct{ fakeArchive }

func (f *failingArchive) DeleteTask(_, id string) error { return errors.New("redis down") }

func TestPurgeAndExport(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	s := NewStore(rdb)
	at := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	add(t, rdb,
		Entry{Kind: modelid.KindModel, ID: modelid.IntID(404), Code: 500001, Message: "param invalid", LogID: "7", TaskID: "a", Attempts: 1, At: at},
		Entry{Kind: modelid.KindVersion, ID: modelid.StringID("amv-1"), Code: 500001, Message: "param invalid", TaskID: "b", Attempts: 2, At: at},
		Entry{Kind: modelid.KindModel, ID: modelid.IntID(405), TaskID: "c", At: at},
	)
	var buf bytes.Buffer
	n, err := s.Export(ctx, &buf)
	if err != nil || n != 3 {
		t.Fatalf("Export: %d, %v; want 3", n, err)
	}
	var first Entry
	if err := json.Unmarshal([]byte(strings.SplitN(buf.String(), "\n", 2)[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.ID != modelid.IntID(404) || first.Reason() != "500001 param invalid (log_id 7)" || !first.At.Equal(at) {
		t.Errorf("first exported entry %+v", first)
	}

	all, err := s.All(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	arch := &fakeArchive{states: map[string]asynq.TaskState{"a": asynq.TaskStateArchived}}
	res, err := Purge(ctx, s, arch, all[:1])
	if err != nil || res.Purged != 1 || res.ArchivedDeleted != 1 {
		t.Fatalf("Purge: %+v, %v", res, err)
	}
	// A failure to delete an archived task is reported, not swallowed; the
	// entry is gone all the same.
	failing := &failingArchive{fakeArchive{states: map[string]asynq.TaskState{"b": asynq.TaskStateArchived}}}
	res, err = Purge(ctx, s, failing, all[1:2])
	if err == nil || res.Purged != 1 || res.ArchivedDeleted != 0 {
		t.Fatalf("Purge with a failing archive: %+v, %v; want the error", res, err)
	}
	if n, _ := s.Count(ctx); n != 1 {
		t.Errorf("%d entries left, want 1", n)
	}
}
