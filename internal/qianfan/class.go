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
	// permission, method); no ID list will succeed.
	ClassRequest
	// ClassUnknown: an unlisted code or an answer we could not read. The
	// client does not retry it; the caller decides.
	ClassUnknown
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
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// codeClass is the facts table of Baidu error codes (docs/qianfan-api.md).
func codeClass(code int) (Class, bool) {
	switch code {
	case 1, 2, 336000, 336100, 500000:
		return ClassTransient, true
	case 4, 17, 18, 19, 336501, 336502:
		return ClassThrottled, true
	case 100, 336001, 336002, 336003, 500001:
		return ClassInvalidIDs, true
	case 3, 6, 13, 14, 15, 110, 111, 336004, 336005, 336101:
		return ClassRequest, true
	}
	return ClassUnknown, false
}

// codeDailyLimit is throttled, but waiting inside one call cannot help.
const codeDailyLimit = 17

// Classify maps any error to its Class; nil gives 0. It works through
// wrapping. context.Canceled and context.DeadlineExceeded are ClassTransient:
// the work was not refused, it was cut short. Errors that are not from this
// package are ClassUnknown, except ErrNoIDs, which is ClassRequest.
func Classify(err error) Class {
	if err == nil {
		return 0
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

func (e *Error) class() Class {
	switch {
	case e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden:
		return ClassRequest
	case e.Code != 0:
		c, _ := codeClass(e.Code)
		return c
	case e.unparsed:
		return ClassUnknown
	case e.HTTPStatus == 0:
		return ClassTransient // no answer: transport failure
	case e.HTTPStatus == http.StatusTooManyRequests:
		return ClassThrottled
	case e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusRequestTimeout:
		return ClassTransient
	case e.HTTPStatus >= 400:
		return ClassRequest // we always send a well-formed body
	}
	return ClassUnknown
}

// IsThrottled reports whether err is ClassThrottled.
func IsThrottled(err error) bool { return Classify(err) == ClassThrottled }

// IsInvalidIDs reports whether err is ClassInvalidIDs.
func IsInvalidIDs(err error) bool { return Classify(err) == ClassInvalidIDs }

// IsRequestError reports whether err is ClassRequest.
func IsRequestError(err error) bool { return Classify(err) == ClassRequest }

// IsTransient reports whether err is ClassTransient.
func IsTransient(err error) bool { return Classify(err) == ClassTransient }
