// Package qianfan is a client for Baidu Qianfan's V1 model batch-delete
// endpoints: it signs each attempt (bce-auth-v1, with Baidu's own signer),
// turns every answer into one typed *Error, and retries inside one call only
// what is safe to retry.
//
// # Classification
//
// Every failure maps to one Class (Classify, IsThrottled, ...):
//
//	answer                                           class            client retries?
//	-----------------------------------------------  ---------------  -------------------------------
//	HTTP 401 / 403 (X-Bce-Error-* headers)           ClassRequest     no
//	codes 3 6 13 14 15 110 111 336004 336005 336101  ClassRequest     no
//	codes 100 336001 336002 336003 500001            ClassInvalidIDs  no (one bad ID fails the batch)
//	codes 1 2 336000 336100 500000                   ClassTransient   yes
//	codes 4 18 19 336501 336502                      ClassThrottled   yes, ThrottleFactor x longer waits
//	code 17 (daily limit)                            ClassThrottled   no (waiting minutes cannot help)
//	HTTP 429 without error_code                      ClassThrottled   yes, Retry-After honoured
//	HTTP 5xx, 408 without error_code (HTML...)       ClassTransient   yes, Retry-After honoured
//	other HTTP 4xx without error_code                ClassRequest     no
//	transport error (refused, reset, EOF, timeout)   ClassTransient   yes
//	context canceled / deadline exceeded             ClassTransient   no: the call returns ctx.Err()
//	any other error_code                             ClassUnknown     no: the caller decides
//	2xx that is empty, malformed JSON, over 1 MiB,   ClassUnknown     no, and the call is Ambiguous
//	  or has neither result nor error_code
//
// A body's error_code wins over the HTTP status, except that 401/403 are
// always ClassRequest. Unknown codes are not retried because a delete that
// might have been applied is not safe to repeat blindly. A 2xx we cannot read
// is ClassUnknown rather than transient for the same reason: the server
// answered, so it may have deleted the IDs.
//
// # Ambiguity
//
// Result.Ambiguous and Error.Ambiguous report that some attempt of the call
// was sent but its answer was lost (reset, EOF or timeout after the request
// was written, or an unreadable 2xx). The IDs may then already be gone, and
// a retry may answer 500001 for IDs this call deleted.
//
// # Context
//
// When ctx is done the call returns at once with an *Error whose Err is
// ctx.Err(), so errors.Is(err, context.Canceled) holds.
package qianfan
