package qianfan

import "errors"

// CredentialProblem names what is wrong with the credentials behind a
// refused call, for operators. It is derived from codes only, so it never
// holds the secret (nor the access key).
type CredentialProblem int

// The credential problems. The zero value means "not a credential problem".
const (
	// CredentialUnknownKey: the access key is not known (InvalidAccessKeyId,
	// V1 13, 15, 110), e.g. a typo or a deleted or revoked key.
	CredentialUnknownKey CredentialProblem = iota + 1
	// CredentialSignatureMismatch: the key is known but the signature is
	// not its (SignatureDoesNotMatch, InvalidHTTPAuthHeader, V1 14): a wrong
	// secret key, or a proxy that altered the request.
	CredentialSignatureMismatch
	// CredentialNoPermission: the key is valid but may not do this
	// (AccessDenied, OptInRequired, HTTP 403, V1 6, 336004), e.g. a
	// read-only policy asked to delete.
	CredentialNoPermission
	// CredentialExpired: the signature's time is too far from the server's
	// (RequestExpired, V1 111): check this machine's clock.
	CredentialExpired
	// CredentialRejected: HTTP 401 without a code that says why.
	CredentialRejected
)

// String describes the problem and what to check, e.g. "unknown access key:
// check QIANFAN_ACCESS_KEY".
func (p CredentialProblem) String() string {
	switch p {
	case 0:
		return "none"
	case CredentialUnknownKey:
		return "unknown access key: check QIANFAN_ACCESS_KEY, and that the key was not deleted or disabled"
	case CredentialSignatureMismatch:
		return "signature mismatch: check QIANFAN_SECRET_KEY belongs to QIANFAN_ACCESS_KEY"
	case CredentialNoPermission:
		return "no permission: the key's IAM policy must allow Qianfan model management (full control to delete)"
	case CredentialExpired:
		return "request expired: this machine's clock is too far from Baidu's"
	case CredentialRejected:
		return "credentials rejected (HTTP 401 without a reason)"
	}
	return "CredentialProblem(?)"
}

// Credential names the credential problem behind e, or 0 when e is not one.
func (e *Error) Credential() CredentialProblem {
	switch e.Code {
	case 13, 15, 110:
		return CredentialUnknownKey
	case 14:
		return CredentialSignatureMismatch
	case 6, 336004:
		return CredentialNoPermission
	case 111:
		return CredentialExpired
	}
	switch e.stringCode() {
	case "InvalidAccessKeyId":
		return CredentialUnknownKey
	case "SignatureDoesNotMatch", "InvalidHTTPAuthHeader":
		return CredentialSignatureMismatch
	case "AccessDenied", "OptInRequired":
		return CredentialNoPermission
	case "RequestExpired":
		return CredentialExpired
	}
	switch e.HTTPStatus {
	case 403:
		return CredentialNoPermission
	case 401:
		return CredentialRejected
	}
	return 0
}

// CredentialProblemOf is Credential for any error; 0 when err is not a
// credential problem.
func CredentialProblemOf(err error) CredentialProblem {
	var e *Error
	if errors.As(err, &e) {
		return e.Credential()
	}
	return 0
}

// CredentialText describes e's credential problem as CredentialProblem's
// String does, naming the key pair that signed the call: the read-only
// pair's variables when it signed (see WithReadKey). "" when e is not a
// credential problem.
func (e *Error) CredentialText() string {
	p := e.Credential()
	if p == 0 {
		return ""
	}
	if !e.ReadKey {
		return p.String()
	}
	switch p {
	case CredentialUnknownKey:
		return "unknown access key: check QIANFAN_READ_ACCESS_KEY (the read-only pair), and that the key was not deleted or disabled"
	case CredentialSignatureMismatch:
		return "signature mismatch: check QIANFAN_READ_SECRET_KEY belongs to QIANFAN_READ_ACCESS_KEY (the read-only pair)"
	case CredentialNoPermission:
		return "no permission: the read-only pair's (QIANFAN_READ_ACCESS_KEY) IAM policy must allow reading Qianfan models, services and batch inference tasks"
	case CredentialRejected:
		return "credentials rejected (HTTP 401 without a reason) for the read-only pair QIANFAN_READ_ACCESS_KEY"
	}
	return p.String() + " (the read-only pair QIANFAN_READ_ACCESS_KEY signed the call)"
}

// CredentialTextOf is CredentialText for any error; "" when err is not a
// credential problem.
func CredentialTextOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.CredentialText()
	}
	return ""
}
