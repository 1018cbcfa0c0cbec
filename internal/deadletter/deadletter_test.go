package deadletter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"go.uber.org/goleak"

	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/producer"
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

type fakeEnqueuer struct {
	reqs []producer.Request
	err  error
}

func (f *fakeEnqueuer) Enqueue(_ context.Context, r producer.Request) (producer.Receipt, error) {
	if f.err != nil {
		return producer.Receipt{}, f.err
	}
	f.reqs = append(f.reqs, r)
	return producer.Receipt{Kind: r.Kind, IDs: len(r.IDs)}, nil
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
	l := tasks.NewLedger(rdb, tasks.LedgerConfig{})
	at := time.Now()
	if err := l.Write(ctx, []tasks.Outcome{
		{Kind: modelid.KindModel, ID: modelid.IntID(1), State: tasks.StateDead, TaskID: "a", At: at},
		{Kind: modelid.KindModel, ID: modelid.StringID("s-1"), State: tasks.StateDead, TaskID: "a", At: at},
		{Kind: modelid.KindVersion, ID: modelid.IntID(2), State: tasks.StateDead, TaskID: "b", At: at},
		{Kind: modelid.KindModel, ID: modelid.IntID(3), State: tasks.StateDead, TaskID: "gone", At: at},
		{Kind: "", ID: modelid.StringID("unreadable"), State: tasks.StateDead, TaskID: "c", At: at},
	}); err != nil {
		t.Fatal(err)
	}
	all, err := All(ctx, l, 2)
	if err != nil || len(all) != 5 {
		t.Fatalf("All: %d entries, %v", len(all), err)
	}

	// Enqueuing fails: nothing is removed.
	if _, err := Requeue(ctx, l, &fakeEnqueuer{err: errors.New("redis down")}, nil, all); err == nil {
		t.Fatal("Requeue with a failing enqueuer: no error")
	}
	if n, _ := l.DeadLetterCount(ctx); n != 5 {
		t.Fatalf("%d entries after a failed requeue, want 5", n)
	}

	enq := &fakeEnqueuer{}
	arch := &fakeArchive{states: map[string]asynq.TaskState{"a": asynq.TaskStateArchived, "b": asynq.TaskStatePending}}
	res, err := Requeue(ctx, l, enq, arch, all)
	if err != nil {
		t.Fatal(err)
	}
	wantReqs := []producer.Request{
		{Kind: modelid.KindModel, IDs: []modelid.ID{modelid.IntID(1), modelid.StringID("s-1"), modelid.IntID(3)}},
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
	left, err := All(ctx, l, 100)
	if err != nil || len(left) != 1 || left[0].EntryID != all[4].EntryID {
		t.Fatalf("left %+v, %v; want only the unreadable entry", left, err)
	}

	found, missing, err := Get(ctx, l, []string{all[4].EntryID, all[0].EntryID})
	if err != nil || len(found) != 1 || found[0].EntryID != all[4].EntryID || len(missing) != 1 || missing[0] != all[0].EntryID {
		t.Fatalf("Get: %+v %v %v", found, missing, err)
	}
	if _, _, err := Get(ctx, l, []string{"x"}); !errors.Is(err, ErrBadEntryID) {
		t.Fatalf("Get(x): %v, want ErrBadEntryID", err)
	}
}
