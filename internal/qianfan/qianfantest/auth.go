package qianfantest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file is an independent bce-auth-v1 implementation, deliberately not
// sharing code with the client (which uses Baidu's signer), so the two
// cross-check each other.

func uriEncode(s string, encodeSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func hmacHex(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// canonicalRequest builds the string to sign. headers maps lower-case names
// to values; only the names in signed are used.
func canonicalRequest(method, path string, query map[string]string, headers map[string]string, signed []string) string {
	uri := "/" + uriEncode(strings.TrimPrefix(path, "/"), false)
	var qs []string
	for k, v := range query {
		if strings.EqualFold(k, "authorization") {
			continue
		}
		qs = append(qs, uriEncode(k, true)+"="+uriEncode(v, true))
	}
	sort.Strings(qs)
	var hs []string
	for _, name := range signed {
		v := strings.TrimSpace(headers[name])
		if v == "" {
			continue
		}
		hs = append(hs, uriEncode(name, true)+":"+uriEncode(v, true))
	}
	sort.Strings(hs)
	return method + "\n" + uri + "\n" + strings.Join(qs, "&") + "\n" + strings.Join(hs, "\n")
}

// authString computes the full Authorization value.
func authString(ak, sk, timestamp string, expire int, signed []string, canonical string) string {
	prefix := "bce-auth-v1/" + ak + "/" + timestamp + "/" + strconv.Itoa(expire)
	signingKey := hmacHex(sk, prefix)
	names := append([]string(nil), signed...)
	sort.Strings(names)
	return prefix + "/" + strings.Join(names, ";") + "/" + hmacHex(signingKey, canonical)
}

// authError is a 401 answer from the gateway.
type authError struct{ code, msg string }

func (e *authError) Error() string { return e.code + ": " + e.msg }

var (
	errNoAuth      = &authError{"AccessDenied", "missing or malformed Authorization"}
	errUnknownAK   = &authError{"InvalidAccessKeyId", "unknown access key"}
	errExpired     = &authError{"RequestExpired", "request timestamp expired or too far from server time"}
	errBadSig      = &authError{"SignatureDoesNotMatch", "signature does not match"}
	errUnsignedHdr = &authError{"AccessDenied", "required header not signed"}
)

// verify checks r's bce-auth-v1 signature against creds at time now.
func verify(r *http.Request, creds map[string]string, now time.Time, maxSkew time.Duration) error {
	parts := strings.Split(r.Header.Get("Authorization"), "/")
	if len(parts) != 6 || parts[0] != "bce-auth-v1" {
		return errNoAuth
	}
	ak, ts, expStr, signedStr, sig := parts[1], parts[2], parts[3], parts[4], parts[5]
	sk, ok := creds[ak]
	if !ok {
		return errUnknownAK
	}
	at, err1 := time.Parse("2006-01-02T15:04:05Z", ts)
	exp, err2 := strconv.Atoi(expStr)
	if err := errors.Join(err1, err2); err != nil || exp <= 0 {
		return errNoAuth
	}
	if d := now.Sub(at); d > maxSkew || -d > maxSkew || now.After(at.Add(time.Duration(exp)*time.Second)) {
		return errExpired
	}
	if xd := r.Header.Get("X-Bce-Date"); xd != "" {
		if t, err := time.Parse("2006-01-02T15:04:05Z", xd); err != nil || now.Sub(t) > maxSkew || t.Sub(now) > maxSkew {
			return errExpired
		}
	}
	signed := strings.Split(signedStr, ";")
	headers := make(map[string]string, len(signed))
	has := make(map[string]bool, len(signed))
	for _, name := range signed {
		if name != strings.ToLower(name) || name == "" {
			return errNoAuth
		}
		has[name] = true
		if name == "host" {
			headers[name] = r.Host
			continue
		}
		headers[name] = strings.Join(r.Header.Values(name), ",")
	}
	// Baidu always signs host and every x-bce-* header; an unsigned one could be tampered with.
	if !has["host"] {
		return errUnsignedHdr
	}
	for name := range r.Header {
		l := strings.ToLower(name)
		if strings.HasPrefix(l, "x-bce-") && l != "x-bce-request-id" && !has[l] {
			return errUnsignedHdr
		}
	}
	query := make(map[string]string)
	for k, v := range r.URL.Query() {
		query[k] = v[0]
	}
	want := authString(ak, sk, ts, exp, signed, canonicalRequest(r.Method, r.URL.Path, query, headers, signed))
	got := r.Header.Get("Authorization")
	if !hmac.Equal([]byte(want), []byte(got)) || sig == "" {
		return errBadSig
	}
	return nil
}

// accessKeyOf is the access key an Authorization header claims, "" if none.
func accessKeyOf(r *http.Request) string {
	parts := strings.Split(r.Header.Get("Authorization"), "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}
