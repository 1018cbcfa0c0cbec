package qianfan

import (
	"sync"
	"time"

	"github.com/baidubce/bce-sdk-go/auth"
	bcehttp "github.com/baidubce/bce-sdk-go/http"
	bcelog "github.com/baidubce/bce-sdk-go/util/log"
)

// DefaultExpireSeconds is how long a signature stays valid.
const DefaultExpireSeconds = 1800

// signedHeaders are the headers we ask the signer to cover; x-bce-* are always covered.
var signedHeaders = []string{"host", "content-type", "x-bce-date"}

// bceLogOnce guards the one write to bce-sdk-go's process-wide logger, which
// would otherwise print the Authorization header at INFO.
var bceLogOnce sync.Once

func silenceBCELog() {
	bceLogOnce.Do(func() { bcelog.SetLogLevel(bcelog.PANIC) })
}

// signRequest is the one place that signs: bce-auth-v1 via Baidu's own
// BceV1Signer. It returns the Authorization value. The time is a parameter so
// tests need no clock tricks.
func signRequest(creds Credentials, method, uri string, params, headers map[string]string,
	headersToSign []string, at time.Time, expireSeconds int) string {
	silenceBCELog()
	req := &bcehttp.Request{}
	req.SetMethod(method)
	req.SetUri(uri)
	for k, v := range params {
		req.SetParam(k, v)
	}
	for k, v := range headers {
		req.SetHeader(k, v)
	}
	toSign := make(map[string]struct{}, len(headersToSign))
	for _, h := range headersToSign {
		toSign[h] = struct{}{}
	}
	signer := &auth.BceV1Signer{}
	signer.Sign(req, &auth.BceCredentials{AccessKeyId: creds.AccessKey, SecretAccessKey: creds.SecretKey},
		&auth.SignOptions{HeadersToSign: toSign, Timestamp: at.Unix(), ExpireSeconds: expireSeconds})
	return req.Header(bcehttp.AUTHORIZATION)
}
