package qianfan

import (
	"testing"
	"time"
)

// signingVectors are the four vectors of docs/qianfan-api.md.
type signingVector struct {
	name          string
	creds         Credentials
	at            string
	expire        int
	method, uri   string
	params        map[string]string
	headers       map[string]string
	headersToSign []string
	want          string
}

func signingVectors() []signingVector {
	defaultSign := []string{"host", "content-length", "content-type", "content-md5"}
	v3headers := map[string]string{
		"Host":           "bj.bcebos.com",
		"Date":           "Mon, 27 Apr 2015 16:23:49 +0800",
		"Content-Type":   "text/plain",
		"Content-Length": "8",
		"Content-Md5":    "NFzcPqhviddjRNnSOGo4rw==",
		"x-bce-date":     "2015-04-27T08:23:49Z",
	}
	v3params := map[string]string{"partNumber": "9", "uploadId": "a44cc9bab11cbd156984767aad637851"}
	a32 := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	b32 := "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	return []signingVector{
		{
			name: "1 PUT object with query", creds: Credentials{"my_ak", "my_sk"}, at: "2014-06-13T05:57:36Z", expire: 1800,
			method: "PUT", uri: "/v1/bucket/object1",
			params:        map[string]string{"A": "", "b": "", "C": "d"},
			headers:       map[string]string{"Host": "bce.baidu.com", "abc": "123", "x-bce-meta-key1": "ABC"},
			headersToSign: defaultSign,
			want:          "bce-auth-v1/my_ak/2014-06-13T05:57:36Z/1800/host;x-bce-meta-key1/80c9672aca2ea9af4bb40b9a8ff458d72df94e97d550840727f3a929af271d25",
		},
		{
			name: "2 DELETE bucket", creds: Credentials{"my_ak", "my_sk"}, at: "2014-06-13T05:57:36Z", expire: 1800,
			method: "DELETE", uri: "/v1/test-bucket1361199862",
			headers: map[string]string{
				"Content-Type": "application/json; charset=utf-8", "Content-Length": "0", "User-Agent": "This is the user-agent",
			},
			headersToSign: defaultSign,
			want:          "bce-auth-v1/my_ak/2014-06-13T05:57:36Z/1800/content-length;content-type/c9386b15d585960ae5e6972f73ed92a9a682dc81025480ba5b41206d3e489822",
		},
		{
			name: "3a PUT part, default headers", creds: Credentials{a32, b32}, at: "2015-04-27T08:23:49Z", expire: 1800,
			method: "PUT", uri: "/v1/test/myfolder/readme.txt", params: v3params, headers: v3headers,
			headersToSign: defaultSign,
			want:          "bce-auth-v1/" + a32 + "/2015-04-27T08:23:49Z/1800/content-length;content-md5;content-type;host;x-bce-date/d74a04362e6a848f5b39b15421cb449427f419c95a480fd6b8cf9fc783e2999e",
		},
		{
			name: "3b PUT part, host only", creds: Credentials{a32, b32}, at: "2015-04-27T08:23:49Z", expire: 1800,
			method: "PUT", uri: "/v1/test/myfolder/readme.txt", params: v3params, headers: v3headers,
			headersToSign: []string{"host"},
			want:          "bce-auth-v1/" + a32 + "/2015-04-27T08:23:49Z/1800/host;x-bce-date/1b8de5a23a56eef657c69f94c621e7acd227d049a4ba577f537d5e5cebf0cf32",
		},
		{
			name: "4 batchDelete (what we send)", creds: Credentials{"my_ak", "my_sk"}, at: "2024-01-01T00:00:00Z", expire: 300,
			method: "POST", uri: PathBatchDeleteModels,
			headers: map[string]string{
				"Content-Type": "application/json", "Host": "qianfan.baidubce.com", "x-bce-date": "2024-01-01T00:00:00Z",
			},
			headersToSign: signedHeaders,
			want:          "bce-auth-v1/my_ak/2024-01-01T00:00:00Z/300/content-type;host;x-bce-date/cef74f27b4d0517a8ef79059992f9edbac3c7a22176212c5d2f70f021e389f3e",
		},
	}
}

func TestSignVectors(t *testing.T) {
	t.Parallel()
	for _, tt := range signingVectors() {
		t.Run(tt.name, func(t *testing.T) {
			at, err := time.Parse(time.RFC3339, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			got := signRequest(tt.creds, tt.method, tt.uri, tt.params, tt.headers, tt.headersToSign, at, tt.expire)
			if got != tt.want {
				t.Errorf("signRequest:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
