package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/baidubce/bce-sdk-go/auth"
	bcehttp "github.com/baidubce/bce-sdk-go/http"
)

// verifyWithBaiduSigner re-signs r with Baidu's own signer (bce-sdk-go),
// using the timestamp, expiry and header list the request claims, and
// compares. It returns the body.
func verifyWithBaiduSigner(r *http.Request, ak, sk string) ([]byte, error) {
	got := r.Header.Get("Authorization")
	parts := strings.Split(got, "/")
	if len(parts) != 6 || parts[0] != "bce-auth-v1" {
		return nil, fmt.Errorf("malformed Authorization %q", got)
	}
	if parts[1] != ak {
		return nil, fmt.Errorf("access key %q, want %q", parts[1], ak)
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", parts[2])
	if err != nil {
		return nil, fmt.Errorf("timestamp: %w", err)
	}
	if d := time.Since(ts); d > 5*time.Minute || d < -5*time.Minute {
		return nil, fmt.Errorf("timestamp %s is %s away from now", parts[2], d)
	}
	expire, err := strconv.Atoi(parts[3])
	if err != nil {
		return nil, err
	}
	req := &bcehttp.Request{}
	req.SetMethod(r.Method)
	req.SetUri(r.URL.Path)
	for k, v := range r.URL.Query() {
		req.SetParam(k, v[0])
	}
	toSign := map[string]struct{}{}
	for _, h := range strings.Split(parts[4], ";") {
		toSign[h] = struct{}{}
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		req.SetHeader(h, v)
	}
	cred, err := auth.NewBceCredentials(ak, sk)
	if err != nil {
		return nil, err
	}
	(&auth.BceV1Signer{}).Sign(req, cred, &auth.SignOptions{HeadersToSign: toSign, Timestamp: ts.Unix(), ExpireSeconds: expire})
	if want := req.Header("Authorization"); want != got {
		return nil, fmt.Errorf("Authorization %q, Baidu's signer gives %q", got, want)
	}
	for _, must := range []string{"host", "content-type", "x-bce-date"} {
		if _, ok := toSign[must]; !ok {
			return nil, fmt.Errorf("%s is not signed", must)
		}
	}
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}
