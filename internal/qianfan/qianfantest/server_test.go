package qianfantest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/baidubce/bce-sdk-go/auth"
	bcehttp "github.com/baidubce/bce-sdk-go/http"
	bcelog "github.com/baidubce/bce-sdk-go/util/log"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	bcelog.SetLogLevel(bcelog.PANIC) // before any test goroutine signs
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/baidubce/bce-sdk-go/util/log.NewLogger.func1"))
}

// TestVerifierVectors runs the four vectors of docs/qianfan-api.md through
// the fake's own canonicalisation.
func TestVerifierVectors(t *testing.T) {
	t.Parallel()
	a32, b32 := strings.Repeat("a", 32), strings.Repeat("b", 32)
	v3 := map[string]string{
		"host": "bj.bcebos.com", "date": "Mon, 27 Apr 2015 16:23:49 +0800", "content-type": "text/plain",
		"content-length": "8", "content-md5": "NFzcPqhviddjRNnSOGo4rw==", "x-bce-date": "2015-04-27T08:23:49Z",
	}
	v3q := map[string]string{"partNumber": "9", "uploadId": "a44cc9bab11cbd156984767aad637851"}
	for _, tt := range []struct {
		name, ak, sk, ts string
		exp              int
		method, path     string
		query, headers   map[string]string
		signed           []string
		want             string
	}{
		{"1", "my_ak", "my_sk", "2014-06-13T05:57:36Z", 1800, "PUT", "/v1/bucket/object1",
			map[string]string{"A": "", "b": "", "C": "d"},
			map[string]string{"host": "bce.baidu.com", "abc": "123", "x-bce-meta-key1": "ABC"},
			[]string{"host", "x-bce-meta-key1"},
			"bce-auth-v1/my_ak/2014-06-13T05:57:36Z/1800/host;x-bce-meta-key1/80c9672aca2ea9af4bb40b9a8ff458d72df94e97d550840727f3a929af271d25"},
		{"2", "my_ak", "my_sk", "2014-06-13T05:57:36Z", 1800, "DELETE", "/v1/test-bucket1361199862", nil,
			map[string]string{"content-type": "application/json; charset=utf-8", "content-length": "0", "user-agent": "This is the user-agent"},
			[]string{"content-length", "content-type"},
			"bce-auth-v1/my_ak/2014-06-13T05:57:36Z/1800/content-length;content-type/c9386b15d585960ae5e6972f73ed92a9a682dc81025480ba5b41206d3e489822"},
		{"3a", a32, b32, "2015-04-27T08:23:49Z", 1800, "PUT", "/v1/test/myfolder/readme.txt", v3q, v3,
			[]string{"content-length", "content-md5", "content-type", "host", "x-bce-date"},
			"bce-auth-v1/" + a32 + "/2015-04-27T08:23:49Z/1800/content-length;content-md5;content-type;host;x-bce-date/d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e"},
		{"3b", a32, b32, "2015-04-27T08:23:49Z", 1800, "PUT", "/v1/test/myfolder/readme.txt", v3q, v3,
			[]string{"host", "x-bce-date"},
			"bce-auth-v1/" + a32 + "/2015-04-27T08:23:49Z/1800/host;x-bce-date/1b8de5a23a56eef657c69f94c621e7acd227d049a4ba577f537d5e5cebf0cf32"},
		{"4", "my_ak", "my_sk", "2024-01-01T00:00:00Z", 300, "POST", "/wenxinworkshop/modelrepo/model/batchDelete", nil,
			map[string]string{"content-type": "application/json", "host": "qianfan.baidubce.com", "x-bce-date": "2024-01-01T00:00:00Z"},
			[]string{"content-type", "host", "x-bce-date"},
			"bce-auth-v1/my_ak/2024-01-01T00:00:00Z/300/content-type;host;x-bce-date/cef74f27b4d0517a8ef79059992f9edbac3c7a22176212c5d2f70f021e389f3e"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			canon := canonicalRequest(tt.method, tt.path, tt.query, tt.headers, tt.signed)
			if got := authString(tt.ak, tt.sk, tt.ts, tt.exp, tt.signed, canon); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	want4 := "POST\n/wenxinworkshop/modelrepo/model/batchDelete\n\ncontent-type:application%2Fjson\nhost:qianfan.baidubce.com\nx-bce-date:2024-01-01T00%3A00%3A00Z"
	got4 := canonicalRequest("POST", "/wenxinworkshop/modelrepo/model/batchDelete", nil,
		map[string]string{"content-type": "application/json", "host": "qianfan.baidubce.com", "x-bce-date": "2024-01-01T00:00:00Z"},
		[]string{"host", "content-type", "x-bce-date"})
	if got4 != want4 {
		t.Errorf("canonical request of vector 4:\n%q\nwant\n%q", got4, want4)
	}
}

// baiduSigned builds a request signed directly with bce-sdk-go's signer.
func baiduSigned(t *testing.T, base, path, body, ak, sk string, at time.Time, mutate func(*http.Request)) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	date := at.UTC().Format("2006-01-02T15:04:05Z")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Bce-Date", date)
	br := &bcehttp.Request{}
	br.SetMethod(http.MethodPost)
	uri, query, _ := strings.Cut(path, "?")
	br.SetUri(uri)
	if query != "" {
		q, _ := url.ParseQuery(query)
		for k, v := range q {
			br.SetParam(k, v[0])
		}
	}
	br.SetHeader("Host", r.Host)
	br.SetHeader("Content-Type", "application/json")
	br.SetHeader("x-bce-date", date)
	(&auth.BceV1Signer{}).Sign(br, &auth.BceCredentials{AccessKeyId: ak, SecretAccessKey: sk},
		&auth.SignOptions{HeadersToSign: map[string]struct{}{"host": {}, "content-type": {}, "x-bce-date": {}},
			Timestamp: at.Unix(), ExpireSeconds: 1800})
	r.Header.Set("Authorization", br.Header("Authorization"))
	if mutate != nil {
		mutate(r)
	}
	return r
}

type answer struct {
	status  int
	gateway string
	body    map[string]any
}

func send(t *testing.T, r *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, gateway: resp.Header.Get("X-Bce-Error-Code")}
	_ = json.Unmarshal(data, &a.body)
	return a
}

const modelPath = "/wenxinworkshop/modelrepo/model/batchDelete"

func TestBaiduSignedRequestsAndAuthFailures(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	fake := New(Config{Now: func() time.Time { return now }, MaxSkew: 5 * time.Minute})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	ok := send(t, baiduSigned(t, srv.URL, modelPath, `{"modelIDs":[1,2]}`, DefaultAccessKey, DefaultSecretKey, now, nil))
	if ok.status != 200 || ok.body["log_id"] == nil || ok.body["result"] == nil {
		t.Fatalf("Baidu-signed request: %+v", ok)
	}
	for _, tt := range []struct {
		name, ak, sk string
		at           time.Time
		mutate       func(*http.Request)
		wantGateway  string
	}{
		{"wrong secret", DefaultAccessKey, "nope", now, nil, "SignatureDoesNotMatch"},
		{"unknown access key", "who", DefaultSecretKey, now, nil, "InvalidAccessKeyId"},
		{"expired timestamp", DefaultAccessKey, DefaultSecretKey, now.Add(-time.Hour), nil, "RequestExpired"},
		{"tampered content-type", DefaultAccessKey, DefaultSecretKey, now,
			func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, "SignatureDoesNotMatch"},
		{"unsigned x-bce header", DefaultAccessKey, DefaultSecretKey, now,
			func(r *http.Request) { r.Header.Set("X-Bce-Extra", "1") }, "AccessDenied"},
		{"no authorization", DefaultAccessKey, DefaultSecretKey, now,
			func(r *http.Request) { r.Header.Del("Authorization") }, "AccessDenied"},
	} {
		a := send(t, baiduSigned(t, srv.URL, modelPath, `{"modelIDs":[3]}`, tt.ak, tt.sk, tt.at, tt.mutate))
		if a.status != 401 || a.gateway != tt.wantGateway || a.body["code"] != tt.wantGateway {
			t.Errorf("%s: got %+v, want 401 %s", tt.name, a, tt.wantGateway)
		}
	}
	st := fake.Stats()
	if st.Calls[OutcomeAuth] != 6 || fake.DeleteCount(KindModel, 3) != 0 || st.IDsDeleted != 2 {
		t.Errorf("stats after auth failures: %+v", st)
	}
}

func TestStoreIsAtomic(t *testing.T) {
	t.Parallel()
	now := time.Now()
	fake := New(Config{Invalid: InvalidIDs(99, "am-gone"), MaxIDs: 3})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	post := func(path, body string) answer {
		return send(t, baiduSigned(t, srv.URL, path, body, DefaultAccessKey, DefaultSecretKey, now, nil))
	}
	for _, tt := range []struct {
		name, path, body string
		wantCode         float64 // 0: success
	}{
		{"ints", modelPath, `{"modelIDs":[1,2]}`, 0},
		{"same int again", modelPath, `{"modelIDs":[2,3]}`, 500001},
		{"invalid int", modelPath, `{"modelIDs":[4,99]}`, 500001},
		{"mixed types", modelPath, `{"modelIDs":[5,"am-1"]}`, 500001},
		{"float", modelPath, `{"modelIDs":[5.5]}`, 500001},
		{"malformed", modelPath, `{"modelIDs":[`, 500001},
		{"wrong key", modelPath, `{"modelVersionIds":[6]}`, 500001},
		{"empty", modelPath, `{"modelIDs":[]}`, 500001},
		{"duplicate", modelPath, `{"modelIDs":[7,7]}`, 500001},
		{"over max", modelPath, `{"modelIDs":[8,9,10,11]}`, 500001},
		{"strings", modelPath, `{"modelIDs":["am-1","2"]}`, 0},
		{"invalid string", modelPath, `{"modelIDs":["am-3","am-gone"]}`, 500001},
		{"versions are separate", "/wenxinworkshop/modelrepo/model/version/batchDelete", `{"modelVersionIds":[1]}`, 0},
	} {
		a := post(tt.path, tt.body)
		code, _ := a.body["error_code"].(float64)
		if a.status != 200 || code != tt.wantCode {
			t.Errorf("%s: got %+v, want code %v", tt.name, a, tt.wantCode)
		}
	}
	counts := map[string]int{}
	for _, id := range []any{1, 2, 3, 4, 5, 7, 8, "am-1", "2", "am-3"} {
		if n := fake.DeleteCount(KindModel, id); n > 0 {
			counts[idKey(normalizeID(id))] = n
		}
	}
	if diff := cmp.Diff(map[string]int{"i:1": 1, "i:2": 1, "s:am-1": 1, "s:2": 1}, counts); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}
	st := fake.Stats()
	if st.IDsDeleted != 5 || st.RepeatDeletes != 1 || st.LargestBatch != 4 || st.Calls["ok"] != 3 || st.Calls["500001"] != 10 {
		t.Errorf("stats %+v", st)
	}
}

func TestQPSCapAndFaultEndpoints(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := now
	fake := New(Config{QPS: 2, Now: func() time.Time { return clock }})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	codes := func(n int) []float64 {
		var out []float64
		for i := range n {
			a := send(t, baiduSigned(t, srv.URL, modelPath, `{"modelIDs":["q`+string(rune('a'+i))+`"]}`,
				DefaultAccessKey, DefaultSecretKey, clock, nil))
			c, _ := a.body["error_code"].(float64)
			out = append(out, c)
		}
		return out
	}
	if diff := cmp.Diff([]float64{0, 0, 18}, codes(3)); diff != "" {
		t.Errorf("QPS 2 (-want +got):\n%s", diff)
	}
	clock = now.Add(time.Second) // the window slides; calls are sequential, so no race
	resp, err := http.Post(srv.URL+"/_fake/faults", "application/json", strings.NewReader(`{"rate_336100":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if diff := cmp.Diff([]float64{336100}, codes(1)); diff != "" {
		t.Errorf("after POST /_fake/faults (-want +got):\n%s", diff)
	}
	resp, err = http.Get(srv.URL + "/_fake/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if diff := cmp.Diff(map[string]int{"ok": 2, "18": 1, "336100": 1}, st.Calls); diff != "" {
		t.Errorf("GET /_fake/stats calls (-want +got):\n%s", diff)
	}
}
