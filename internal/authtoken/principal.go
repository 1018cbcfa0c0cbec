package authtoken

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Right is something a token may do beyond enqueuing and reading.
type Right string

// The rights a tokens file can grant with "may".
const (
	// RightRules: preview and run rules, and run one over its limit.
	RightRules Right = "rules"
	// RightDeadLetters: requeue and purge dead letters.
	RightDeadLetters Right = "deadletters"
	// RightCancel: cancel enqueued deletions.
	RightCancel Right = "cancel"
)

var rights = []Right{RightRules, RightDeadLetters, RightCancel}

// Scope is what a token may do. The zero Scope may enqueue any kind,
// without a quota, and has no Right.
type Scope struct {
	// Full grants every kind, name and Right without a quota: the tokens of
	// QFPURGE_API_TOKENS, which have no file to say otherwise.
	Full bool
	// Kinds are the kinds it may delete; empty means every kind.
	Kinds []modelid.Kind
	// Names are globs (path.Match) a model's name must match for a deletion
	// to go ahead; empty means any name. Workers check them at call time.
	Names []string
	// MaxIDsPerDay caps the IDs it may enqueue per UTC day; 0 means no cap.
	MaxIDsPerDay int64
	// May are its rights.
	May []Right
}

// AllowsKind reports whether s may delete kind k.
func (s Scope) AllowsKind(k modelid.Kind) bool {
	return s.Full || len(s.Kinds) == 0 || slices.Contains(s.Kinds, k)
}

// Allows reports whether s holds right r.
func (s Scope) Allows(r Right) bool { return s.Full || slices.Contains(s.May, r) }

// Principal is an authenticated caller: the name of its token and what the
// token may do. The token itself is never kept.
type Principal struct {
	Name  string
	Scope Scope
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal an authenticated request's context
// carries.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// maxNameLen bounds a token's name: it goes into Redis keys, events and logs.
const maxNameLen = 64

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// CheckName reports why s cannot name a token.
func CheckName(s string) error {
	if len(s) > maxNameLen || !namePattern.MatchString(s) {
		return fmt.Errorf("token name %q: want 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", s, maxNameLen)
	}
	return nil
}

// Named is one accepted token: its name, the SHA-256 of its value, and its
// scope.
type Named struct {
	Name   string
	Sum    [sha256.Size]byte
	Scope  Scope
	Origin string // where it was defined, for messages: "QFPURGE_API_TOKENS entry #2", "tokens.yaml:4"
}

// Registry is the set of named tokens of an API. The zero Registry accepts
// nothing.
type Registry struct {
	tokens []Named
}

// NewRegistry checks that names and tokens are unique and returns the
// registry; the error names the two places a name or token is given.
func NewRegistry(tokens []Named) (*Registry, error) {
	if len(tokens) == 0 {
		return nil, ErrNone
	}
	names := map[string]string{}
	sums := map[[sha256.Size]byte]string{}
	for _, t := range tokens {
		if err := CheckName(t.Name); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Origin, err)
		}
		if prev, ok := names[t.Name]; ok {
			return nil, fmt.Errorf("%s: token name %q is already used by %s", t.Origin, t.Name, prev)
		}
		if prev, ok := sums[t.Sum]; ok {
			return nil, fmt.Errorf("%s: the same token as %s", t.Origin, prev)
		}
		names[t.Name], sums[t.Sum] = t.Origin, t.Origin
	}
	return &Registry{tokens: slices.Clone(tokens)}, nil
}

// Len is the number of tokens.
func (g *Registry) Len() int { return len(g.tokens) }

// Names lists the tokens' names, in the order given.
func (g *Registry) Names() []string {
	out := make([]string, len(g.tokens))
	for i, t := range g.tokens {
		out[i] = t.Name
	}
	return out
}

// Authenticate returns the principal of r's bearer token. Every token is
// compared, whatever matched, so the time taken does not tell which one (or
// how much of one) matched.
func (g *Registry) Authenticate(r *http.Request) (Principal, bool) {
	tok, ok := Bearer(r)
	if !ok || g == nil {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(tok))
	found := -1
	for i := range g.tokens {
		eq := subtle.ConstantTimeCompare(sum[:], g.tokens[i].Sum[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return Principal{}, false
	}
	t := g.tokens[found]
	return Principal{Name: t.Name, Scope: t.Scope}, true
}

// ParseEnv reads the entries of QFPURGE_API_TOKENS (Split's output): each
// "name:token", or a bare token, which is named by its position
// ("token-1", "token-2", ...) so that lists written before tokens had
// names keep working. Every token has full rights. unnamed counts the bare
// ones, which the caller should warn about. Errors name entries by
// position, never by value.
func ParseEnv(entries []string) (tokens []Named, unnamed int, err error) {
	if len(entries) == 0 {
		return nil, 0, ErrNone
	}
	for i, e := range entries {
		origin := "entry #" + strconv.Itoa(i+1)
		name, tok, ok := strings.Cut(e, ":")
		// A bare token holding a colon stays bare unless what precedes the
		// colon is a valid name.
		if !ok || CheckName(name) != nil {
			name, tok = "token-"+strconv.Itoa(i+1), e
			unnamed++
		}
		if len(tok) < MinLen {
			return nil, 0, fmt.Errorf("%s: the token is %d characters long; tokens must be at least %d", origin, len(tok), MinLen)
		}
		tokens = append(tokens, Named{Name: name, Sum: sha256.Sum256([]byte(tok)), Scope: Scope{Full: true}, Origin: origin})
	}
	return tokens, unnamed, nil
}

// ParseSum reads a token_sha256 value: 64 hex digits.
func ParseSum(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return sum, errors.New("token_sha256: want the 64 hex digits of the token's SHA-256 (sha256sum prints them), never the token")
	}
	copy(sum[:], b)
	return sum, nil
}

// ParseRight reads one "may" entry.
func ParseRight(s string) (Right, error) {
	if slices.Contains(rights, Right(s)) {
		return Right(s), nil
	}
	names := make([]string, len(rights))
	for i, r := range rights {
		names[i] = string(r)
	}
	return "", fmt.Errorf("unknown right %q: want %s", s, strings.Join(names, ", "))
}
