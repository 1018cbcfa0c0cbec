// Package qianfan is a client for Baidu Qianfan's model-management API, V1
// and V2: it signs each attempt (bce-auth-v1, with Baidu's own signer), turns
// every answer into one typed *Error, and retries inside one call only what
// is safe to retry. The facts it relies on, and what Baidu leaves
// undocumented, are in docs/qianfan-api.md.
//
// # Classification
//
// Every failure maps to one Class (Classify, IsThrottled, IsGone, ...):
//
//	answer                                           class            client retries?
//	-----------------------------------------------  ---------------  -------------------------------
//	HTTP 401 / 403, whatever the body                ClassRequest     no
//	V1 codes 6 13 14 15 110 111 336004               ClassRequest     no
//	V1 codes 100 336001 336002 336003 500001         ClassInvalidIDs  no (one bad ID fails the batch)
//	V1 codes 1 2 336000 336100 500000                ClassTransient   yes
//	V1 codes 4 18 19 336501 336502                   ClassThrottled   yes, ThrottleFactor x longer waits
//	V1 code 17 (daily limit)                         ClassThrottled   no (waiting minutes cannot help)
//	V1 codes 3 336005 336101                         ClassGone        no
//	V2 AccessDenied InvalidAccessKeyId OptInRequired ClassRequest     no
//	  SignatureDoesNotMatch InvalidHTTPAuthHeader
//	  RequestExpired MalformedJSON InvalidHTTPRequest
//	V2 InvalidParameter InvalidParameterValue        ClassInvalidIDs  no (a V2 call has one ID)
//	  InappropriateJSON InvalidArgument
//	V2 InternalError ServiceUnavailable              ClassTransient   yes
//	V2 RequestLimitExceeded TooManyRequests          ClassThrottled   yes, ThrottleFactor x longer waits
//	  Throttling ThrottlingException RateLimitExceeded QpsLimitExceeded
//	V2 InvalidURI InvalidAction InvalidVersion       ClassGone        no
//	  NotImplemented MethodNotAllowed
//	V2 NoSuchKey NotFound ResourceNotFound           ClassUnknown     no: an ID or the endpoint?
//	no code, or an unlisted string code, and:
//	  HTTP 429                                       ClassThrottled   yes, Retry-After honoured
//	  HTTP 404 410 405 501                           ClassGone        no
//	  HTTP 5xx, 408 (HTML, empty...)                 ClassTransient   yes, Retry-After honoured
//	  other HTTP 4xx, unlisted string code           ClassUnknown     no: the caller decides
//	  other HTTP 4xx, no code at all                 ClassRequest     no
//	transport error (refused, reset, EOF, timeout)   ClassTransient   yes
//	context canceled / deadline exceeded             ClassTransient   no: the call returns ctx.Err()
//	any other V1 error_code                          ClassUnknown     no: the caller decides
//	2xx that is empty, malformed JSON, over 1 MiB,   ClassUnknown     no, and a delete is Ambiguous
//	  has neither result nor a code, or whose
//	  result has an unexpected shape
//
// V1 answers errors with HTTP 200 and a numeric error_code; V2 with HTTP >= 400
// and a string code (Error.ErrorCode), also sent in the X-Bce-Error-Code
// header (Error.GatewayCode), which is used when the body has none. A code
// wins over the HTTP status, except that 401/403 are always ClassRequest.
// Unknown codes are not retried because a delete that might have been
// applied is not safe to repeat blindly. A 2xx we cannot read is ClassUnknown
// rather than transient for the same reason: the server answered, so it may
// have deleted the IDs.
//
// ClassGone means the endpoint does not serve: Baidu says V1 may go offline
// and nobody documents how that answers, so every plausible form (HTTP 404,
// 410, 405, 501 without a known code; V1 codes 3, 336005, 336101) lands here,
// never in ClassInvalidIDs and never in success. A "not found" that names no
// culprit (NoSuchKey and kin) is ClassUnknown: it fits a missing ID and a
// removed endpoint alike. Error.Credential names a credential problem for
// operators without touching the secret.
//
// # Ambiguity
//
// Result.Ambiguous and Error.Ambiguous report that some attempt of a delete
// was sent but its answer was lost (reset, EOF or timeout after the request
// was written, or an unreadable 2xx). The IDs may then already be gone, and
// a retry may answer 500001 for IDs this call deleted. Reads are never
// ambiguous.
//
// # Listing
//
// Every endpoint, read or delete, V1 or V2, goes through the same signed
// call, error model, retries and limiters. A "not found" from a detail or
// describe call proves nothing; only a complete listing shows that
// something is absent. The walks (WalkModelsV1, WalkCustomModelSets,
// WalkServices) fail as a whole when any page fails, so an error always
// means "unknown". V1 pages by offset, which skips an item when another is
// deleted mid-walk: V1Listing.Consistent says whether the walk was a
// snapshot.
//
// # Context
//
// When ctx is done the call returns at once with an *Error whose Err is
// ctx.Err(), so errors.Is(err, context.Canceled) holds.
package qianfan
