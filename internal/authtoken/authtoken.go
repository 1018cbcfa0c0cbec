// Package authtoken checks the credentials of qfpurge's HTTP listeners (the
// API and the monitor) in one way: bearer tokens of a minimum length, and
// basic auth, compared in constant time so neither a token's content, its
// length nor a user name leaks through timing.
package authtoken

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// MinLen is the shortest token accepted.
const MinLen = 16

// ErrNone is returned by CheckTokens for an empty list.
var ErrNone = errors.New("no bearer token configured")

// CheckTokens refuses an empty list and tokens shorter than MinLen, naming
// them by position, never by value.
func CheckTokens(tokens []string) error {
	if len(tokens) == 0 {
		return ErrNone
	}
	for i, t := range tokens {
		if len(t) < MinLen {
			return fmt.Errorf("token #%d is %d characters long; tokens must be at least %d", i+1, len(t), MinLen)
		}
	}
	return nil
}

// Split splits a comma-separated list of tokens (several for rotation),
// trimming spaces and dropping empty entries.
func Split(s string) []string {
	var out []string
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// Set is a set of accepted credentials. The zero Set accepts nothing.
type Set struct {
	tokens [][sha256.Size]byte
	basic  [][sha256.Size]byte
}

// NewSet returns a Set accepting the bearer tokens and, when user and
// password are both set, basic auth with them.
func NewSet(tokens []string, user, password string) *Set {
	s := &Set{}
	for _, t := range tokens {
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	if user != "" && password != "" {
		s.basic = append(s.basic, basicSum(user, password))
	}
	return s
}

func basicSum(user, password string) [sha256.Size]byte {
	// The length prefix keeps "ab"+"c" apart from "a"+"bc".
	return sha256.Sum256(fmt.Appendf(nil, "%d:%s:%s", len(user), user, password))
}

// Empty reports whether nothing is accepted.
func (s *Set) Empty() bool { return len(s.tokens) == 0 && len(s.basic) == 0 }

// HasBearer and HasBasic report which schemes are configured.
func (s *Set) HasBearer() bool { return len(s.tokens) > 0 }

// HasBasic reports whether basic auth is configured.
func (s *Set) HasBasic() bool { return len(s.basic) > 0 }

// Bearer returns the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110).
func Bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// Allows reports whether r carries an accepted token or basic credential.
// Every configured credential is compared, whatever matched, so the time
// taken does not depend on which one (or how much of one) matched.
func (s *Set) Allows(r *http.Request) bool {
	match := 0
	if tok, ok := Bearer(r); ok {
		sum := sha256.Sum256([]byte(tok))
		for i := range s.tokens {
			match |= subtle.ConstantTimeCompare(sum[:], s.tokens[i][:])
		}
	}
	if u, p, ok := r.BasicAuth(); ok {
		sum := basicSum(u, p)
		for i := range s.basic {
			match |= subtle.ConstantTimeCompare(sum[:], s.basic[i][:])
		}
	}
	return match == 1
}
