package qianfan

import (
	"context"
	"errors"
	"net/http"
	"strconv"
)

// Class is what a failure means for the caller. See the package doc for the table.
type Class int

// The classes. The zero value means "no error".
const (
	// ClassTransient: try again soon (server trouble, lost answer, timeout,
	// done context).
	ClassTransient Class = iota + 1
	// ClassThrottled: a quota was hit; try again later, more slowly.
	ClassThrottled
	// ClassInvalidIDs: permanent because of the IDs (e.g. 500001; one bad ID
	// fails the whole batch, so splitting it may help).
	ClassInvalidIDs
	// ClassRequest: permanent for the whole request (credentials,
	// permission, a request we built wrong); no ID list will succeed.
	ClassRequest
	// ClassUnknown: an unlisted code or an answer we could not read. The
	// client does not retry it; the caller decides.
	ClassUnknown
	// ClassGone: the endpoint does not exist or no longer serves (Baidu
	// says V1 may go offline; nobody documents how that answers). Nothing
	// was deleted and nothing is known about the IDs: switch endpoints or
	// stop, never conclude anything about the IDs.
	ClassGone
)

// String returns a short lower-case name, e.g. "throttled".
func (c Class) String() string {
	switch c {
	case 0:
		return "none"
	case ClassTransient:
		return "transient"
	case ClassThrottled:
		return "throttled"
	case ClassInvalidIDs:
		return "invalid-ids"
	case ClassRequest:
		return "request"
	case ClassUnknown:
		return "unknown"
	case ClassGone:
		return "gone"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// codeClass is the table of V1 error codes (docs/qianfan-api.md).
func codeClass(code int) (Class, bool) {
	switch code {
	case 1, 2, 336000, 336100, 500000:
		return ClassTransient, true
	case 4, 17, 18, 19, 336501, 336502:
		return ClassThrottled, true
	case 100, 336001, 336002, 336003, 500001:
		return ClassInvalidIDs, true
	case 6, 13, 14, 15, 110, 111, 336004:
		return ClassRequest, true
	// 3 "Unsupported openapi method" is what Baidu's AI gateway answers for a
	// path it does not serve; 336005 names a missing API; 336101 says our
	// POST, the documented method, is not accepted: the endpoint changed.
	case 3, 336005, 336101:
		return ClassGone, true
	}
	return ClassUnknown, false
}

// codeDailyLimit is throttled, but waiting inside one call cannot help.
const codeDailyLimit = 17

// stringCodes is the table of V2 / BCE string codes (docs/qianfan-api.md).
// A code not listed here is classed by the HTTP status (see class).
var stringCodes = map[string]Class{
	// Credentials and permission (BCE common codes).
	"AccessDenied":          ClassRequest,
	"InvalidAccessKeyId":    ClassRequest,
	"SignatureDoesNotMatch": ClassRequest,
	"InvalidHTTPAuthHeader": ClassRequest,
	"RequestExpired":        ClassRequest,
	"OptInRequired":         ClassRequest,
	// A body we built wrong: a bug here, not the IDs.
	"MalformedJSON":      ClassRequest,
	"InvalidHTTPRequest": ClassRequest,
	// Server trouble.
	"InternalError":      ClassTransient,
	"ServiceUnavailable": ClassTransient,
	// Quotas.
	"RequestLimitExceeded": ClassThrottled,
	"TooManyRequests":      ClassThrottled,
	"Throttling":           ClassThrottled,
	"ThrottlingException":  ClassThrottled,
	"RateLimitExceeded":    ClassThrottled,
	"QpsLimitExceeded":     ClassThrottled,
	// The parameter, i.e. the one ID of a V2 call, is wrong.
	"InvalidParameter":      ClassInvalidIDs,
	"InvalidParameterValue": ClassInvalidIDs,
	"InappropriateJSON":     ClassInvalidIDs,
	"InvalidArgument":       ClassInvalidIDs,
	// The operation is not there.
	"InvalidURI":       ClassGone,
	"InvalidAction":    ClassGone,
	"InvalidVersion":   ClassGone,
	"NotImplemented":   ClassGone,
	"MethodNotAllowed": ClassGone,
	// "Not found" names no culprit: BCE's generic 404 is NoSuchKey "The
	// resource you requested does not exist", which fits a missing ID and a
	// removed endpoint alike. It proves neither, so the caller decides.
	"NoSuchKey":        ClassUnknown,
	"NotFound":         ClassUnknown,
	"ResourceNotFound": ClassUnknown,
}

// Classify maps any error to its Class; nil gives 0. It works through
// wrapping. context.Canceled and context.DeadlineExceeded are ClassTransient:
// the work was not refused, it was cut short. Errors that are not from this
// package are ClassUnknown, except ErrNoIDs, which is ClassRequest.
func Classify(err error) Class {
	if err == nil {
		return 0
	}
	// A 2xx whose body was lost (even to the attempt's own timeout) was
	// answered, so it may have been applied: unknown, not transient.
	if e, ok := errors.AsType[*Error](err); ok && e.unparsed {
		return ClassUnknown
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ClassTransient
	}
	if errors.Is(err, ErrNoIDs) {
		return ClassRequest
	}
	var e *Error
	if !errors.As(err, &e) {
		return ClassUnknown
	}
	return e.class()
}

// class is the one mapping from an answer to a Class; the package doc
// shows it as a table.
func (e *Error) class() Class {
	switch {
	case e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden:
		return ClassRequest
	case e.Code != 0:
		c, _ := codeClass(e.Code)
		return c
	case e.unparsed:
		return ClassUnknown
	case e.routeGone:
		return ClassGone
	case e.HTTPStatus == 0:
		return ClassTransient // no answer: transport failure
	}
	code := e.stringCode()
	if c, ok := stringCodes[code]; ok {
		return c
	}
	// No code, or one we do not know: the status decides where it can.
	switch {
	case e.HTTPStatus == http.StatusTooManyRequests:
		return ClassThrottled
	case isGoneStatus(e.HTTPStatus):
		return ClassGone
	case e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusRequestTimeout:
		return ClassTransient
	case code != "":
		return ClassUnknown
	case e.HTTPStatus >= 400:
		return ClassRequest // we always send a well-formed body
	}
	return ClassUnknown
}

// isGoneStatus: the path or method is not served.
func isGoneStatus(status int) bool {
	switch status {
	case http.StatusNotFound, http.StatusGone, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	}
	return false
}

// IsThrottled reports whether err is ClassThrottled.
func IsThrottled(err error) bool { return Classify(err) == ClassThrottled }

// IsInvalidIDs reports whether err is ClassInvalidIDs.
func IsInvalidIDs(err error) bool { return Classify(err) == ClassInvalidIDs }

// IsRequestError reports whether err is ClassRequest.
func IsRequestError(err error) bool { return Classify(err) == ClassRequest }

// IsTransient reports whether err is ClassTransient.
func IsTransient(err error) bool { return Classify(err) == ClassTransient }

// IsGone reports whether err is ClassGone: the endpoint does not serve.
func IsGone(err error) bool { return Classify(err) == ClassGone }

// IsUnknown reports whether err is ClassUnknown.
func IsUnknown(err error) bool { return Classify(err) == ClassUnknown }
