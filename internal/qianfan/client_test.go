package qianfan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baidubce/bce-sdk-go/auth"
	bcehttp "github.com/baidubce/bce-sdk-go/http"
	"github.com/google/go-cmp/cmp"

	"github.com/qfpurge/qfpurge/internal/qianfan/qianfantest"
)

// bundle is a client wired to a fake server.
type bundle struct {
	fake   *qianfantest.Server
	srv    *httptest.Server
	client *Client
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// setup starts a fake (optionally wrapped) and a client with fast retries.
func setup(t *testing.T, cfg qianfantest.Config, wrap func(http.Handler) http.Handler, opts ...Option) *bundle {
	t.Helper()
	if cfg.Credentials == nil {
		cfg.Credentials = map[string]string{"ak": testSecret}
	}
	fake := qianfantest.New(cfg)
	var h http.Handler = fake
	if wrap != nil {
		h = wrap(fake)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	opts = append([]Option{
		WithBaseURL(srv.URL),
		WithRetryInterval(time.Millisecond, 20*time.Millisecond),
		WithMaxElapsed(5 * time.Second),
		WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}, opts...)
	c, err := New(Credentials{"ak", testSecret}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s := logs.String(); strings.Contains(s, testSecret) || strings.Contains(s, "bce-auth-v1") {
			t.Errorf("logs leak credentials:\n%s", s)
		}
	})
	return &bundle{fake: fake, srv: srv, client: c, logs: logs}
}

func TestThreeTransientFaultsThenSuccess(t *testing.T) {
	t.Parallel()
	var fake *qianfantest.Server
	seq := []qianfantest.Faults{{Rate503: 1}, {Rate336100: 1}, {RateReset: 1}, {}}
	var n atomic.Int32
	b := setup(t, qianfantest.Config{}, func(h http.Handler) http.Handler {
		fake = h.(*qianfantest.Server)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fake.SetFaults(seq[min(int(n.Add(1))-1, len(seq)-1)])
			h.ServeHTTP(w, r)
		})
	})
	res, err := b.client.BatchDeleteModels(t.Context(), IntIDs{585, 586})
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 4 || !res.Ambiguous || res.LogID == "" {
		t.Errorf("Result = %+v, want 4 attempts, ambiguous (after the reset), a log_id", res)
	}
	for _, id := range []int64{585, 586} {
		if got := b.fake.DeleteCount(qianfantest.KindModel, id); got != 1 {
			t.Errorf("DeleteCount(%d) = %d, want 1", id, got)
		}
	}
	st := b.fake.Stats()
	want := map[string]int{"503": 1, "336100": 1, "reset": 1, "ok": 1}
	if diff := cmp.Diff(want, st.Calls); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
	if st.IDsDeleted != 2 {
		t.Errorf("IDsDeleted = %d, want 2", st.IDsDeleted)
	}
}

func TestPermanentErrorMakesOneCall(t *testing.T) {
	t.Parallel()
	b := setup(t, qianfantest.Config{Invalid: qianfantest.InvalidIDs("am-bad")}, nil)
	_, err := b.client.BatchDeleteModelVersions(t.Context(), StringIDs{"am-ok", "am-bad"})
	var e *Error
	if !errors.As(err, &e) || !IsInvalidIDs(err) || e.Code != 500001 || e.Attempts != 1 || e.LogID == "" {
		t.Fatalf("want one-attempt 500001 with log_id, got %#v", err)
	}
	if diff := cmp.Diff(map[string]int{"500001": 1}, b.fake.Stats().Calls); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
	if got := b.fake.DeleteCount(qianfantest.KindVersion, "am-ok"); got != 0 {
		t.Errorf("batch not atomic: am-ok deleted %d times", got)
	}
}

func TestUnknownCodeIsNotRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, `{"error_code":999999,"error_msg":"new"}`)
	}))
	defer srv.Close()
	c, _ := New(Credentials{"ak", testSecret}, WithBaseURL(srv.URL))
	_, err := c.BatchDeleteModels(t.Context(), IntIDs{1})
	if Classify(err) != ClassUnknown || calls.Load() != 1 {
		t.Errorf("got %v after %d calls, want ClassUnknown after 1", err, calls.Load())
	}
}

func TestBadSignatureRejected(t *testing.T) {
	t.Parallel()
	b := setup(t, qianfantest.Config{Credentials: map[string]string{"ak": "other-secret"}}, nil)
	_, err := b.client.BatchDeleteModels(t.Context(), IntIDs{1})
	var e *Error
	if !errors.As(err, &e) || !IsRequestError(err) || e.HTTPStatus != 401 ||
		e.GatewayCode != "SignatureDoesNotMatch" || e.Attempts != 1 {
		t.Fatalf("want one-attempt 401 SignatureDoesNotMatch, got %#v", err)
	}
	if b.fake.Stats().IDsDeleted != 0 {
		t.Error("deleted with a bad signature")
	}
}

func TestThrottledHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var times []time.Time
	b := setup(t, qianfantest.Config{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			times = append(times, time.Now())
			first := len(times) == 1
			mu.Unlock()
			if first {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	res, err := b.client.BatchDeleteModels(t.Context(), IntIDs{7})
	if err != nil || res.Attempts != 2 {
		t.Fatalf("got %+v, %v; want success on attempt 2", res, err)
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("retried after %v, want >= 1s (Retry-After)", gap)
	}
}

func TestThrottledByFakeQPSBacksOff(t *testing.T) {
	t.Parallel()
	b := setup(t, qianfantest.Config{QPS: 1}, nil, WithRetryInterval(50*time.Millisecond, time.Second))
	if _, err := b.client.BatchDeleteModels(t.Context(), IntIDs{1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := b.client.BatchDeleteModels(t.Context(), IntIDs{2})
	if err != nil {
		t.Fatal(err)
	}
	st := b.fake.Stats()
	if res.Attempts < 2 || st.Calls["18"] != res.Attempts-1 || st.Calls["ok"] != 2 {
		t.Errorf("Result %+v, Calls %v: want 18s then ok", res, st.Calls)
	}
	// Throttled waits are ThrottleFactor x longer, so a 1 s window costs few attempts.
	if res.Attempts > 5 {
		t.Errorf("%d attempts in %v: not backing off", res.Attempts, time.Since(start))
	}
}

func TestCancelReturnsWithin50ms(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"in flight", "in backoff"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			arrived := make(chan struct{}, 10)
			b := setup(t, qianfantest.Config{}, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					arrived <- struct{}{}
					h.ServeHTTP(w, r)
				})
			}, WithRetryInterval(10*time.Second, 10*time.Second), WithMaxElapsed(time.Minute))
			if name == "in flight" {
				b.fake.SetFaults(qianfantest.Faults{Latency: 10 * time.Second})
			} else {
				b.fake.SetFaults(qianfantest.Faults{Rate503: 1})
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				_, err := b.client.BatchDeleteModels(ctx, IntIDs{1})
				done <- err
			}()
			<-arrived
			if name == "in backoff" {
				// Let the 503 reach the client so it is waiting, not in flight.
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			start := time.Now()
			select {
			case err := <-done:
				if elapsed := time.Since(start); elapsed > 50*time.Millisecond {
					t.Errorf("returned %v after cancel", elapsed)
				}
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
			case <-time.After(time.Second):
				t.Fatal("call did not return after cancel")
			}
		})
	}
}

func TestDroppedResponseIsReproducibleAndAmbiguous(t *testing.T) {
	t.Parallel()
	pattern := func() string {
		b := setup(t, qianfantest.Config{Faults: qianfantest.Faults{RateDropAfterDelete: 0.5, Seed: 42}},
			nil, WithMaxElapsed(0))
		var out strings.Builder
		for i := range 12 {
			_, err := b.client.BatchDeleteModels(t.Context(), IntIDs{int64(i)})
			switch {
			case err == nil:
				out.WriteByte('.')
			case IsTransient(err) && err.(*Error).Ambiguous:
				out.WriteByte('D')
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if got := b.fake.DeleteCount(qianfantest.KindModel, i); got != 1 {
				t.Errorf("id %d deleted %d times, want 1 (drop happens after delete)", i, got)
			}
		}
		return out.String()
	}
	first, second := pattern(), pattern()
	if first != second || !strings.Contains(first, "D") || !strings.Contains(first, ".") {
		t.Errorf("patterns %q and %q: want equal, with drops and successes", first, second)
	}

	// With retries, the retry after a drop meets the deleted IDs: 500001, ambiguous.
	b := setup(t, qianfantest.Config{Faults: qianfantest.Faults{RateDropAfterDelete: 1}}, nil)
	_, err := b.client.BatchDeleteModels(t.Context(), IntIDs{9})
	var e *Error
	if !errors.As(err, &e) || e.Code != 500001 || !e.Ambiguous || e.Attempts != 2 {
		t.Fatalf("want ambiguous 500001 on attempt 2, got %#v", err)
	}
	if got := b.fake.DeleteCount(qianfantest.KindModel, 9); got != 1 {
		t.Errorf("DeleteCount = %d, want 1", got)
	}
	if st := b.fake.Stats(); st.RepeatDeletes != 1 {
		t.Errorf("RepeatDeletes = %d, want 1", st.RepeatDeletes)
	}
}

func TestDialErrorIsNotAmbiguous(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := New(Credentials{"ak", testSecret}, WithBaseURL(url), WithMaxElapsed(0))
	_, err := c.BatchDeleteModels(t.Context(), IntIDs{1})
	var e *Error
	if !errors.As(err, &e) || e.Ambiguous || !IsTransient(err) {
		t.Errorf("want transient, not ambiguous; got %#v", err)
	}
}

// baiduSignature re-signs r with bce-sdk-go directly, using the request's
// own timestamp and expiry; withQuery false leaves the query out, as a
// signer that ignored it would.
func baiduSignature(r *http.Request, ak, sk string, withQuery bool) string {
	parts := strings.Split(r.Header.Get("Authorization"), "/")
	if len(parts) != 6 {
		return ""
	}
	ts, _ := time.Parse(time.RFC3339, parts[2])
	var exp int
	fmt.Sscan(parts[3], &exp)
	req := &bcehttp.Request{}
	req.SetMethod(r.Method)
	req.SetUri(r.URL.Path)
	if withQuery {
		for k, v := range r.URL.Query() {
			req.SetParam(k, v[0])
		}
	}
	req.SetHeader("Host", r.Host)
	req.SetHeader("Content-Type", r.Header.Get("Content-Type"))
	req.SetHeader("x-bce-date", r.Header.Get("X-Bce-Date"))
	(&auth.BceV1Signer{}).Sign(req, &auth.BceCredentials{AccessKeyId: ak, SecretAccessKey: sk},
		&auth.SignOptions{
			HeadersToSign: map[string]struct{}{"host": {}, "content-type": {}, "x-bce-date": {}},
			Timestamp:     ts.Unix(), ExpireSeconds: exp,
		})
	return req.Header("Authorization")
}

// TestAcceptedByBaiduSignerVerifier checks our V1 and V2 requests against a
// verifier that re-signs with bce-sdk-go directly.
func TestAcceptedByBaiduSignerVerifier(t *testing.T) {
	t.Parallel()
	var checked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		if want := baiduSignature(r, "ak", testSecret, true); want != got || !strings.Contains(got, "/content-type;host;x-bce-date/") {
			http.Error(w, "signature mismatch", 401)
			return
		}
		// A V2 signature must cover the query: signed without it, it differs.
		if r.URL.RawQuery != "" && baiduSignature(r, "ak", testSecret, false) == got {
			http.Error(w, "query not signed", 401)
			return
		}
		checked.Add(1)
		if r.URL.Query().Get("Action") != "" {
			fmt.Fprint(w, `{"requestId":"req-9","result":{}}`)
			return
		}
		fmt.Fprint(w, `{"log_id":123,"result":{}}`)
	}))
	defer srv.Close()
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	c, _ := New(Credentials{"ak", testSecret}, WithBaseURL(srv.URL), WithClock(func() time.Time { return at }))
	for _, call := range []func(context.Context, IDs) (Result, error){c.BatchDeleteModels, c.BatchDeleteModelVersions} {
		res, err := call(t.Context(), IntIDs{1, 2})
		if err != nil || res.LogID != "123" {
			t.Fatalf("got %+v, %v", res, err)
		}
	}
	for _, call := range []func(context.Context, string) (Result, error){c.DeleteModelSet, c.DeleteModel} {
		res, err := call(t.Context(), "am-x")
		if err != nil || res.LogID != "req-9" {
			t.Fatalf("V2: got %+v, %v", res, err)
		}
	}
	if checked.Load() != 4 {
		t.Errorf("verifier checked %d requests, want 4", checked.Load())
	}
}

func TestEachAttemptSignedAfresh(t *testing.T) {
	t.Parallel()
	var dates []string
	var mu sync.Mutex
	var tick atomic.Int64
	b := setup(t, qianfantest.Config{Now: func() time.Time { return time.Unix(1_700_000_000+tick.Load(), 0) }},
		func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				dates = append(dates, r.Header.Get("X-Bce-Date"))
				mu.Unlock()
				h.ServeHTTP(w, r)
			})
		}, WithClock(func() time.Time { return time.Unix(1_700_000_000+tick.Add(1), 0) }), WithMaxElapsed(50*time.Millisecond))
	b.fake.SetFaults(qianfantest.Faults{Rate500000: 1})
	_, err := b.client.BatchDeleteModels(t.Context(), IntIDs{1})
	if !IsTransient(err) {
		t.Fatalf("want transient error, got %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dates) < 2 || dates[0] == dates[1] {
		t.Errorf("x-bce-date per attempt = %v, want a fresh one each time", dates)
	}
}

func TestInputs(t *testing.T) {
	t.Parallel()
	if _, err := New(Credentials{AccessKey: "ak"}); err == nil {
		t.Error("New accepted an empty secret key")
	}
	if _, err := New(Credentials{"ak", "sk"}, WithBaseURL("::nope")); err == nil {
		t.Error("New accepted a bad base URL")
	}
	// A secret in the base URL is refused without being echoed.
	for _, u := range []string{"https://t0ken-s3cret@qianfan.example", "https://u:pa55-s3cret@qianfan.example", "https://qianfan.example/%zz-s3cret"} {
		_, err := New(Credentials{"ak", "sk"}, WithBaseURL(u))
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("base URL %s: %v, want an error that does not echo it", u, err)
		}
	}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c, _ := New(Credentials{"ak", "sk"}, WithBaseURL(srv.URL))
	for _, ids := range []IDs{nil, IntIDs{}, StringIDs(nil)} {
		if _, err := c.BatchDeleteModels(t.Context(), ids); !errors.Is(err, ErrNoIDs) {
			t.Errorf("ids %#v: err = %v, want ErrNoIDs", ids, err)
		}
	}
	for _, call := range []func(context.Context, string) (Result, error){c.DeleteModelSet, c.DeleteModel} {
		if _, err := call(t.Context(), ""); !errors.Is(err, ErrNoIDs) {
			t.Errorf("empty V2 ID: err = %v, want ErrNoIDs", err)
		}
	}
	if calls.Load() != 0 {
		t.Error("empty list reached the server")
	}
	creds := Credentials{"ak", testSecret}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "creds", creds)
	for _, s := range []string{fmt.Sprint(creds), fmt.Sprintf("%+v", creds), fmt.Sprintf("%#v", creds), buf.String()} {
		if strings.Contains(s, testSecret) || !strings.Contains(s, "ak") {
			t.Errorf("credentials not masked: %s", s)
		}
	}
}

func TestQPSCapPacesAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, qianfantest.Config{}, nil, WithQPS(20, 1))
	start := time.Now()
	for i := range 5 {
		if _, err := b.client.BatchDeleteModels(t.Context(), IntIDs{int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// 5 calls at 20/s with burst 1 need at least 4 intervals of 50 ms.
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("5 calls took %v, want >= 200ms at 20 QPS", d)
	}
}

// countingLimiter is a hand-written Limiter.
type countingLimiter struct{ n atomic.Int32 }

func (l *countingLimiter) Wait(ctx context.Context) error { l.n.Add(1); return ctx.Err() }

func TestExtraLimiterPerAttempt(t *testing.T) {
	t.Parallel()
	l := &countingLimiter{}
	b := setup(t, qianfantest.Config{}, nil, WithLimiter(l), WithMaxElapsed(50*time.Millisecond))
	b.fake.SetFaults(qianfantest.Faults{Rate503: 1})
	_, _ = b.client.BatchDeleteModels(t.Context(), IntIDs{1})
	if int(l.n.Load()) != b.fake.Stats().Calls["503"] {
		t.Errorf("limiter waited %d times for %d attempts", l.n.Load(), b.fake.Stats().Calls["503"])
	}
}
