package qianfan

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes caps how much of a response body we read.
const maxBodyBytes = 1 << 20

// ErrNoIDs is returned, before any HTTP call, for an empty or nil ID list.
var ErrNoIDs = errors.New("qianfan: empty ID list")

// Error is the one error type for a failed call: an answer from Qianfan or
// its gateway, or a transport failure (then Err is set). Build it only with
// newResponseError or newTransportError.
type Error struct {
	HTTPStatus int    // 0 when no answer was received
	Code       int    // V1 error_code (a number); 0 when absent
	ErrorCode  string // V2 code (a string such as "AccessDenied"); "" when absent
	Message    string // error_msg or message, or a short description
	LogID      string // log_id (V1) or requestId (V2): what Baidu support asks for

	// Endpoint is the operation called, e.g. "/v2/model?Action=DeleteModel".
	Endpoint string

	GatewayCode    string // X-Bce-Error-Code header
	GatewayMessage string // X-Bce-Error-Message header

	RetryAfter time.Duration // from a Retry-After header, 0 when absent

	Attempts  int  // HTTP attempts made by the call
	Ambiguous bool // see Result.Ambiguous
	// ReadKey: the read-only key pair signed the call (see WithReadKey).
	ReadKey bool

	Err error // transport cause or context error, if any

	// unparsed marks a 2xx answer we could not understand (empty, malformed,
	// oversized, or neither result nor error_code).
	unparsed bool
	// routeGone marks a V1 path answered "not found" with no code of the
	// operation's own: the route is gone (see Client.attempt).
	routeGone bool
}

// Error describes the failure, e.g. "500001 param invalid (log_id 2443985832)".
// It never contains credentials or request headers.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Code != 0:
		fmt.Fprintf(&b, "%d %s", e.Code, e.Message)
	case e.ErrorCode != "":
		fmt.Fprintf(&b, "HTTP %d %s: %s", e.HTTPStatus, e.ErrorCode, e.Message)
	case e.GatewayCode != "" || e.GatewayMessage != "":
		fmt.Fprintf(&b, "HTTP %d %s: %s", e.HTTPStatus, e.GatewayCode, e.GatewayMessage)
	case e.HTTPStatus != 0:
		fmt.Fprintf(&b, "HTTP %d: %s", e.HTTPStatus, e.Message)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString(e.Message)
	}
	if e.LogID != "" {
		fmt.Fprintf(&b, " (log_id %s)", e.LogID)
	}
	if e.Ambiguous {
		b.WriteString(" [ambiguous: an earlier attempt may have been applied]")
	}
	if e.ReadKey {
		b.WriteString(" [signed with the read-only key QIANFAN_READ_ACCESS_KEY]")
	}
	return b.String()
}

// Unwrap returns the transport or context cause.
func (e *Error) Unwrap() error { return e.Err }

// code is the error's code as text, for logs: the V1 number, else the V2
// string, else the gateway header.
func (e *Error) code() string {
	switch {
	case e.Code != 0:
		return strconv.Itoa(e.Code)
	case e.ErrorCode != "":
		return e.ErrorCode
	}
	return e.GatewayCode
}

// stringCode is the V2 / BCE code: the body's, else the gateway header's.
func (e *Error) stringCode() string { return cmp.Or(e.ErrorCode, e.GatewayCode) }

// apiBody is every answer shape: V1 ({log_id, result | error_code,
// error_msg}) and V2 / BCE ({requestId, result | code, message}). log_id is
// an int in one doc table and a string in the examples, so both are accepted.
type apiBody struct {
	LogID     json.RawMessage `json:"log_id"`
	Result    json.RawMessage `json:"result"`
	ErrorCode json.RawMessage `json:"error_code"`
	ErrorMsg  string          `json:"error_msg"`
	RequestID string          `json:"requestId"`
	Code      json.RawMessage `json:"code"`
	Message   string          `json:"message"`
}

// rawScalar turns a JSON number or string into its text.
func rawScalar(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// newResponseError reads resp (body through a size limit) and returns the
// log_id on success, with the answer's result decoded into out when out is
// not nil, or the *Error describing the answer. It is the one place an
// answer becomes an error.
func newResponseError(resp *http.Response, out any) (string, *Error) {
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	e := &Error{
		HTTPStatus:     resp.StatusCode,
		GatewayCode:    resp.Header.Get("X-Bce-Error-Code"),
		GatewayMessage: resp.Header.Get("X-Bce-Error-Message"),
		RetryAfter:     parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		LogID:          resp.Header.Get("X-Bce-Request-Id"),
	}
	if readErr != nil {
		// The status line arrived but the body did not: the answer is lost.
		e.Err = readErr
		e.Message = "reading response body"
		e.unparsed = resp.StatusCode/100 == 2
		return "", e
	}
	if len(data) > maxBodyBytes {
		e.Message = fmt.Sprintf("response body larger than %d bytes", maxBodyBytes)
		e.unparsed = resp.StatusCode/100 == 2
		return "", e
	}
	var body apiBody
	jsonErr := json.Unmarshal(data, &body)
	if jsonErr == nil {
		if id := rawScalar(body.LogID); id != "" {
			e.LogID = id
		} else if body.RequestID != "" {
			e.LogID = body.RequestID
		}
		if c := rawScalar(body.ErrorCode); c != "" {
			code, err := strconv.Atoi(c)
			if err != nil {
				code = -1 // present but not a number: unknown
			}
			e.Code = code
			e.Message = body.ErrorMsg
		}
		if c := rawScalar(body.Code); c != "" && c != "0" && e.Code == 0 {
			e.ErrorCode = c
			e.Message = cmp.Or(body.Message, body.ErrorMsg)
		}
	}
	if resp.StatusCode/100 == 2 {
		switch {
		case e.Code != 0, e.ErrorCode != "":
			return "", e
		case jsonErr != nil:
			e.Message = "malformed JSON in 2xx answer"
			if len(data) == 0 {
				e.Message = "empty 2xx answer"
			}
		case len(body.Result) == 0 || string(body.Result) == "null":
			e.Message = "2xx answer with neither result nor error_code"
		case out != nil && json.Unmarshal(body.Result, out) != nil:
			e.Message = "2xx answer whose result has an unexpected shape"
		default:
			return e.LogID, nil
		}
		e.unparsed = true
		return "", e
	}
	if e.Code == 0 && e.ErrorCode == "" {
		e.Message = http.StatusText(resp.StatusCode)
		if jsonErr == nil && body.Message != "" {
			e.Message = body.Message
		}
	}
	return "", e
}

// newTransportError wraps a failure to get an answer. A done ctx wins: its
// error says more than the transport's.
func newTransportError(ctx context.Context, err error) *Error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return &Error{Err: ctxErr, Message: ctxErr.Error()}
	}
	return &Error{Err: err, Message: err.Error()}
}

// parseRetryAfter accepts delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
