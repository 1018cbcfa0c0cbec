package qianfan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testSecret = "s3cr3t-never-shown"

func jsonAnswer(status int, body string, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

func codeAnswer(code int) http.HandlerFunc {
	return jsonAnswer(200, fmt.Sprintf(`{"error_code":%d,"error_msg":"m%d","log_id":77}`, code, code))
}

// classRow is one answer and the class it must get.
type classRow struct {
	name    string
	handler http.HandlerFunc
	ctx     func(t *testing.T) context.Context // defaults to t.Context()
	v2      bool                               // call DeleteModel instead of BatchDeleteModels
	want    Class
	check   func(t *testing.T, e *Error)
}

func TestClassification(t *testing.T) {
	t.Parallel()
	type row = classRow
	rows := []row{}
	// Every code of the facts table.
	for code, want := range map[int]Class{
		1: ClassTransient, 2: ClassTransient, 3: ClassGone, 4: ClassThrottled, 6: ClassRequest,
		13: ClassRequest, 14: ClassRequest, 15: ClassRequest, 17: ClassThrottled, 18: ClassThrottled,
		19: ClassThrottled, 100: ClassInvalidIDs, 110: ClassRequest, 111: ClassRequest,
		336000: ClassTransient, 336001: ClassInvalidIDs, 336002: ClassInvalidIDs, 336003: ClassInvalidIDs,
		336004: ClassRequest, 336005: ClassGone, 336100: ClassTransient, 336101: ClassGone,
		336501: ClassThrottled, 336502: ClassThrottled, 500000: ClassTransient, 500001: ClassInvalidIDs,
		424242: ClassUnknown,
	} {
		rows = append(rows, row{name: fmt.Sprintf("code %d", code), handler: codeAnswer(code), want: want,
			check: func(t *testing.T, e *Error) {
				if e.Code != code || e.LogID != "77" || e.HTTPStatus != 200 || e.Message != fmt.Sprintf("m%d", code) {
					t.Errorf("got %+v", e)
				}
			}})
	}
	rows = append(rows, v2Rows()...)
	oversized := `{"log_id":"1","result":{},"pad":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	rows = append(rows,
		row{name: "401 gateway headers", want: ClassRequest,
			handler: jsonAnswer(401, `{"requestId":"r-1","code":"SignatureDoesNotMatch","message":"bad"}`,
				"X-Bce-Error-Code", "SignatureDoesNotMatch", "X-Bce-Error-Message", "bad sig"),
			check: func(t *testing.T, e *Error) {
				if e.GatewayCode != "SignatureDoesNotMatch" || e.GatewayMessage != "bad sig" || e.HTTPStatus != 401 || e.LogID != "r-1" {
					t.Errorf("got %+v", e)
				}
			}},
		row{name: "403 gateway headers, empty body", want: ClassRequest,
			handler: jsonAnswer(403, "", "X-Bce-Error-Code", "AccessDenied", "X-Bce-Error-Message", "no"),
			check: func(t *testing.T, e *Error) {
				if e.GatewayCode != "AccessDenied" || e.HTTPStatus != 403 {
					t.Errorf("got %+v", e)
				}
			}},
		row{name: "429 retry-after", want: ClassThrottled, handler: jsonAnswer(429, "slow down", "Retry-After", "7"),
			check: func(t *testing.T, e *Error) {
				if e.RetryAfter != 7*time.Second {
					t.Errorf("RetryAfter = %v, want 7s", e.RetryAfter)
				}
			}},
		row{name: "502 HTML", want: ClassTransient, handler: jsonAnswer(502, "<html><body>Bad Gateway</body></html>")},
		row{name: "404 no code", want: ClassGone, handler: jsonAnswer(404, "")},
		row{name: "400 no code", want: ClassRequest, handler: jsonAnswer(400, "")},
		row{name: "200 malformed JSON", want: ClassUnknown, handler: jsonAnswer(200, `{"log_id":`),
			check: wantAmbiguous},
		row{name: "200 empty body", want: ClassUnknown, handler: jsonAnswer(200, ""), check: wantAmbiguous},
		row{name: "200 neither result nor error_code", want: ClassUnknown, handler: jsonAnswer(200, `{"log_id":5}`),
			check: wantAmbiguous},
		row{name: "200 body over limit", want: ClassUnknown, handler: jsonAnswer(200, oversized), check: wantAmbiguous},
		row{name: "500 body over limit", want: ClassTransient, handler: jsonAnswer(500, oversized)},
		row{name: "connection reset", want: ClassTransient,
			handler: func(w http.ResponseWriter, r *http.Request) {
				conn, _, _ := http.NewResponseController(w).Hijack()
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			},
			check: func(t *testing.T, e *Error) {
				if e.Err == nil || !e.Ambiguous {
					t.Errorf("want transport cause and Ambiguous, got %+v", e)
				}
			}},
		row{name: "attempt timeout", want: ClassTransient,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body) // lets the server notice the client hanging up
				<-r.Context().Done()
			},
			check: func(t *testing.T, e *Error) {
				if !e.Ambiguous || !errors.Is(e, context.DeadlineExceeded) {
					t.Errorf("want Ambiguous deadline error, got %+v", e)
				}
			}},
		row{name: "cancelled context", want: ClassTransient, handler: codeAnswer(500001),
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			check: func(t *testing.T, e *Error) {
				if !errors.Is(e, context.Canceled) || e.Attempts != 0 {
					t.Errorf("want context.Canceled before any attempt, got %+v", e)
				}
			}},
	)
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c, err := New(Credentials{"ak", testSecret}, WithBaseURL(srv.URL),
				WithMaxElapsed(0), WithAttemptTimeout(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			}
			if tt.v2 {
				_, err = c.DeleteModel(ctx, "amv-1")
			} else {
				_, err = c.BatchDeleteModels(ctx, IntIDs{1})
			}
			if got := Classify(err); got != tt.want {
				t.Fatalf("Classify = %v, want %v (err %v)", got, tt.want, err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want *Error, got %T %v", err, err)
			}
			if s := err.Error(); strings.Contains(s, testSecret) || strings.Contains(s, "bce-auth-v1") {
				t.Errorf("error string leaks credentials: %s", s)
			}
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
}

func wantAmbiguous(t *testing.T, e *Error) {
	t.Helper()
	if !e.Ambiguous {
		t.Errorf("want Ambiguous, got %+v", e)
	}
}

func TestClassifyPlainErrors(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("task: %w", &Error{Code: 18})
	for _, tt := range []struct {
		err  error
		want Class
	}{
		{nil, 0},
		{context.Canceled, ClassTransient},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), ClassTransient},
		{wrapped, ClassThrottled},
		{ErrNoIDs, ClassRequest},
		{errors.New("other"), ClassUnknown},
		{&Error{HTTPStatus: 401, Code: 336100}, ClassRequest},
		{&Error{HTTPStatus: 503, Code: 500001}, ClassInvalidIDs},
	} {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if !IsThrottled(wrapped) || IsTransient(wrapped) || IsInvalidIDs(wrapped) || IsRequestError(wrapped) ||
		IsGone(wrapped) || IsUnknown(wrapped) {
		t.Error("predicates disagree with Classify")
	}
	gone := fmt.Errorf("task: %w", &Error{HTTPStatus: 404})
	if !IsGone(gone) || IsUnknown(gone) || !IsUnknown(&Error{HTTPStatus: 404, ErrorCode: "NoSuchKey"}) {
		t.Error("IsGone / IsUnknown disagree with Classify")
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	e := &Error{HTTPStatus: 200, Code: 500001, Message: "param invalid", LogID: "2443985832"}
	if got, want := e.Error(), "500001 param invalid (log_id 2443985832)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// v2Answer answers like a V2 endpoint: status, BCE body and gateway headers.
func v2Answer(status int, code string) http.HandlerFunc {
	return jsonAnswer(status, fmt.Sprintf(`{"requestId":"req-%s","code":%q,"message":"msg %s"}`, code, code, code),
		"X-Bce-Error-Code", code, "X-Bce-Error-Message", "msg "+code)
}

// v2Rows: every V2 code we map, each at the status Baidu documents for it
// (400 where it documents none), plus the forms "this endpoint is gone" may take.
func v2Rows() []classRow {
	type row = classRow
	status := map[string]int{
		"AccessDenied": 403, "InvalidAccessKeyId": 403, "OptInRequired": 403, "InternalError": 500,
		"ServiceUnavailable": 503, "RequestLimitExceeded": 429, "TooManyRequests": 429, "NoSuchKey": 404,
		"NotFound": 404, "ResourceNotFound": 404, "InvalidVersion": 404, "MethodNotAllowed": 405,
		"NotImplemented": 501,
	}
	var rows []row
	for code, want := range stringCodes {
		st := status[code]
		if st == 0 {
			st = 400
		}
		rows = append(rows, row{name: fmt.Sprintf("V2 %d %s", st, code), v2: true, handler: v2Answer(st, code), want: want,
			check: func(t *testing.T, e *Error) {
				if e.ErrorCode != code || e.GatewayCode != code || e.LogID != "req-"+code || e.HTTPStatus != st ||
					e.Message != "msg "+code || e.Endpoint != "/v2/model?Action=DeleteModel" || e.Ambiguous {
					t.Errorf("got %+v", e)
				}
			}})
	}
	return append(rows,
		row{name: "V2 400 unlisted code", v2: true, handler: v2Answer(400, "SomethingNew"), want: ClassUnknown},
		row{name: "V2 409 unlisted code", v2: true, handler: v2Answer(409, "ModelInUse"), want: ClassUnknown},
		row{name: "V2 503 unlisted code", v2: true, handler: v2Answer(503, "Overloaded"), want: ClassTransient},
		row{name: "V2 429 unlisted code", v2: true, handler: v2Answer(429, "SlowDown"), want: ClassThrottled},
		row{name: "V2 404 unlisted code", v2: true, handler: v2Answer(404, "NoSuchAPI"), want: ClassGone},
		row{name: "V2 403 unlisted code", v2: true, handler: v2Answer(403, "Forbidden"), want: ClassRequest},
		row{name: "V2 code only in the header", v2: true, want: ClassRequest,
			handler: jsonAnswer(400, "", "X-Bce-Error-Code", "SignatureDoesNotMatch")},
		row{name: "V2 200 with an error code", v2: true, handler: v2Answer(200, "InvalidParameter"), want: ClassInvalidIDs,
			check: func(t *testing.T, e *Error) {
				if e.Ambiguous {
					t.Errorf("a readable error is not ambiguous: %+v", e)
				}
			}},
		row{name: "V2 200 with requestId but no result", v2: true, handler: jsonAnswer(200, `{"requestId":"r"}`),
			want: ClassUnknown, check: wantAmbiguous},
		// What "this endpoint is gone" may look like: never invalid IDs, never success.
		row{name: "gone: 404 empty", handler: jsonAnswer(404, ""), want: ClassGone},
		row{name: "gone: 404 HTML", handler: jsonAnswer(404, "<html><body>404 Not Found</body></html>"), want: ClassGone},
		row{name: "gone: 410", handler: jsonAnswer(410, ""), want: ClassGone},
		row{name: "gone: 405", handler: jsonAnswer(405, ""), want: ClassGone},
		row{name: "gone: 501", handler: jsonAnswer(501, ""), want: ClassGone},
		row{name: "gone: V1 404 with BCE NotFound", handler: v2Answer(404, "NotFound"), want: ClassUnknown},
		// A gateway's answer for a V1 route that no longer exists: no body,
		// its own code in a header. Gone, whatever the header says.
		row{name: "gone: V1 404 empty with a gateway NotFound header", want: ClassGone,
			handler: jsonAnswer(404, "", "X-Bce-Error-Code", "NotFound")},
		row{name: "gone: V1 404 empty with a gateway NoSuchKey header", want: ClassGone,
			handler: jsonAnswer(404, "", "X-Bce-Error-Code", "NoSuchKey", "X-Bce-Error-Message", "The resource you requested does not exist")},
		// On V2 one path serves many actions: a header-only "not found" may
		// be the ID's, so it proves nothing.
		row{name: "V2 404 empty with a gateway NotFound header", v2: true, want: ClassUnknown,
			handler: jsonAnswer(404, "", "X-Bce-Error-Code", "NotFound")},
		row{name: "gone: V1 error_code 3 at 404", handler: jsonAnswer(404, `{"error_code":3,"error_msg":"Unsupported openapi method"}`), want: ClassGone},
		row{name: "gone: V1 error_code 336005", handler: codeAnswer(336005), want: ClassGone},
	)
}

func TestCredentialProblem(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want CredentialProblem
	}{
		{&Error{HTTPStatus: 401, GatewayCode: "InvalidAccessKeyId"}, CredentialUnknownKey},
		{&Error{HTTPStatus: 403, ErrorCode: "InvalidAccessKeyId"}, CredentialUnknownKey},
		{&Error{HTTPStatus: 400, ErrorCode: "SignatureDoesNotMatch"}, CredentialSignatureMismatch},
		{&Error{HTTPStatus: 400, ErrorCode: "InvalidHTTPAuthHeader"}, CredentialSignatureMismatch},
		{&Error{HTTPStatus: 403, ErrorCode: "AccessDenied"}, CredentialNoPermission},
		{&Error{HTTPStatus: 403}, CredentialNoPermission},
		{&Error{HTTPStatus: 400, ErrorCode: "RequestExpired"}, CredentialExpired},
		{&Error{HTTPStatus: 401}, CredentialRejected},
		{&Error{HTTPStatus: 200, Code: 14}, CredentialSignatureMismatch},
		{&Error{HTTPStatus: 200, Code: 6}, CredentialNoPermission},
		{&Error{HTTPStatus: 200, Code: 110}, CredentialUnknownKey},
		{&Error{HTTPStatus: 200, Code: 111}, CredentialExpired},
		{fmt.Errorf("wrapped: %w", &Error{HTTPStatus: 200, Code: 336004}), CredentialNoPermission},
		{&Error{HTTPStatus: 200, Code: 500001}, 0},
		{&Error{HTTPStatus: 404}, 0},
		{errors.New("other"), 0},
		{nil, 0},
	} {
		got := CredentialProblemOf(tt.err)
		if got != tt.want {
			t.Errorf("CredentialProblemOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
		if s := got.String(); strings.Contains(s, testSecret) || s == "" {
			t.Errorf("String() = %q", s)
		}
		if tt.want != 0 && !IsRequestError(tt.err) {
			t.Errorf("%v: a credential problem must be ClassRequest, got %v", tt.err, Classify(tt.err))
		}
	}
}
