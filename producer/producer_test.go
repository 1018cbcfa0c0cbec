package producer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/redistest"
	"github.com/qfpurge/qfpurge/internal/tasks"
	"github.com/qfpurge/qfpurge/producer"
)

var cmpID = cmp.Comparer(func(a, b producer.ID) bool { return a == b })

func TestParseIDs(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		asString bool
		want     []producer.ID
		badLines []int
	}{
		{"lines", "585\n\n# comment\nam-x\n  586  \n", false,
			[]producer.ID{producer.IntID(585), producer.StringID("am-x"), producer.IntID(586)}, nil},
		{"lines as strings", "585\nam-x\n", true,
			[]producer.ID{producer.StringID("585"), producer.StringID("am-x")}, nil},
		{"JSON lines keep their type", "585\n\"586\"\n[587, \"am-y\"]\n", false,
			[]producer.ID{producer.IntID(585), producer.StringID("586"), producer.IntID(587), producer.StringID("am-y")}, nil},
		{"one JSON array over lines", "[\n  585,\n  \"am-z\"\n]\n", false,
			[]producer.ID{producer.IntID(585), producer.StringID("am-z")}, nil},
		{"JSON arrays in sequence", "[1,2]\n[\"a\"]", false,
			[]producer.ID{producer.IntID(1), producer.IntID(2), producer.StringID("a")}, nil},
		{"bad lines reported", "585\n0\nam x\n-4\n12abc\n", false, nil, []int{2, 3, 4}},
		{"bad JSON elements reported with lines", "[\n  1,\n  1.5,\n  \"\",\n  {}\n]", false, nil, []int{3, 4, 5}},
		{"malformed JSON", "[1, 2", false, nil, []int{1}},
		{"empty", "", false, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := producer.ParseIDs(strings.NewReader(tt.in), tt.asString)
			var ie *producer.InvalidIDsError
			if tt.badLines != nil {
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v, want InvalidIDsError", err)
				}
				var lines []int
				for _, v := range ie.Invalid {
					lines = append(lines, v.Index)
				}
				if diff := cmp.Diff(tt.badLines, lines); diff != "" {
					t.Errorf("bad lines (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpID); diff != "" {
				t.Errorf("IDs (-want +got):\n%s", diff)
			}
		})
	}
}

func newProducer(t *testing.T, rdb redis.UniversalClient, cfg producer.Config) *producer.Producer {
	t.Helper()
	p, err := producer.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnqueueSplitsByTypeAndCollapsesDuplicates(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, producer.Config{BatchSize: 3, Shards: 2})
	ids := []producer.ID{producer.IntID(1), producer.StringID("a"), producer.IntID(2), producer.IntID(1),
		producer.IntID(3), producer.IntID(4), producer.StringID("b")}
	rc, err := p.Enqueue(context.Background(), producer.Request{Kind: producer.KindModel, IDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	if rc.IDs != 6 || rc.IntIDs != 4 || rc.StringIDs != 2 || rc.Duplicates != 1 {
		t.Errorf("receipt counts %+v", rc)
	}
	// 4 ints with batch size 3: one ready batch of 3, one grouped job of 1;
	// 2 strings: one grouped job.
	var got []string
	for _, b := range rc.Batches {
		got = append(got, fmt.Sprintf("%s/%d/grouped=%v", b.IDType, b.IDs, b.Group != ""))
	}
	if diff := cmp.Diff([]string{"int/3/grouped=false", "int/1/grouped=true", "string/2/grouped=true"}, got); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

func TestEnqueueRejectsInvalidAndEnqueuesNothing(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, producer.Config{})
	_, err := p.Enqueue(context.Background(), producer.Request{Kind: producer.KindModel,
		IDs: []producer.ID{producer.IntID(1), producer.IntID(-1), producer.StringID("a b")}})
	var ie *producer.InvalidIDsError
	if !errors.As(err, &ie) || len(ie.Invalid) != 2 {
		t.Fatalf("err = %v, want two invalid IDs", err)
	}
	if n := len(m.Keys()); n != 0 {
		t.Errorf("%d Redis keys written for a rejected request", n)
	}
	if _, err := p.Enqueue(context.Background(), producer.Request{Kind: "model-set", IDs: []producer.ID{producer.IntID(1)}}); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := p.Enqueue(context.Background(), producer.Request{Kind: producer.KindModel}); !errors.Is(err, producer.ErrNoIDs) {
		t.Errorf("empty request: %v", err)
	}
}

func TestEnqueueKeyIsIdempotent(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, producer.Config{})
	req := producer.Request{Kind: producer.KindModel, IDs: []producer.ID{producer.IntID(7)}, Key: "offboard-tenant-42"}
	if _, err := p.Enqueue(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	rc, err := p.Enqueue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Batches) != 1 || !rc.Batches[0].Existing {
		t.Errorf("second enqueue with the same key: %+v, want one existing batch", rc.Batches)
	}
}

func TestDelayedRequestsAreScheduledBatches(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	p := newProducer(t, rdb, producer.Config{})
	at := time.Now().Add(time.Hour)
	rc, err := p.Enqueue(context.Background(), producer.Request{Kind: producer.KindVersion, IDs: []producer.ID{producer.StringID("amv-1")}, ProcessAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Batches) != 1 || rc.Batches[0].Group != "" || rc.Batches[0].At.IsZero() {
		t.Fatalf("batches %+v, want one scheduled ready batch", rc.Batches)
	}
	q, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(tasks.Queue)
	if err != nil {
		t.Fatal(err)
	}
	if q.Scheduled != 1 {
		t.Errorf("%d scheduled tasks, want 1", q.Scheduled)
	}
}

// TestBulkTaskCount is the acceptance bound: 100,000 IDs become at most
// ceil(100000/batch size) + groups tasks, on a real Redis.
func TestBulkTaskCount(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	p := newProducer(t, rdb, producer.Config{})
	ids := make([]producer.ID, 0, 100_050)
	for n := int64(1); n <= 100_000; n++ {
		ids = append(ids, producer.IntID(n))
	}
	for i := range 50 {
		ids = append(ids, producer.StringID(fmt.Sprintf("am-%d", i)))
	}
	rc, err := p.Enqueue(context.Background(), producer.Request{Kind: producer.KindModel, IDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	q, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(tasks.Queue)
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 full int batches and one grouped job of 50 string IDs.
	if q.Size != 1001 || len(rc.Batches) != 1001 {
		t.Errorf("%d tasks in the queue, %d in the receipt; want 1001", q.Size, len(rc.Batches))
	}
	groups := 4 * producer.DefaultShards // kinds × ID types × shards
	if limit := (len(ids)+99)/100 + groups; q.Size > limit {
		t.Errorf("%d tasks, over the bound %d", q.Size, limit)
	}
}
