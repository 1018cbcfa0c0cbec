package authtoken

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

func sumHex(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

func TestParseEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in          string
		wantNames   []string
		wantUnnamed int
		wantErr     string
	}{
		{in: "ci:ci-token-0123456789,ops:ops-token-0123456789", wantNames: []string{"ci", "ops"}},
		{in: "bare-token-0123456789,ci:ci-token-0123456789", wantNames: []string{"token-1", "ci"}, wantUnnamed: 1},
		// What precedes the colon is no name (a space), so the whole is a bare token.
		{in: "a b:0123456789abcdef", wantNames: []string{"token-1"}, wantUnnamed: 1},
		// A bare token with a colon after a valid name reads as name:token;
		// if what follows is short, it is refused, not silently misread.
		{in: "old-token-0123456789:x", wantErr: "entry #1: the token is 1 characters long"},
		{in: "ci:short", wantErr: "entry #1: the token is 5 characters long"},
		{in: "", wantErr: ErrNone.Error()},
	} {
		tokens, unnamed, err := ParseEnv(Split(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "short") {
				t.Errorf("%q: err %v, want %q without the token", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		var names []string
		for _, tk := range tokens {
			names = append(names, tk.Name)
		}
		if diff := cmp.Diff(tc.wantNames, names); diff != "" || unnamed != tc.wantUnnamed {
			t.Errorf("%q: names (-want +got)\n%s unnamed %d, want %d", tc.in, diff, unnamed, tc.wantUnnamed)
		}
	}
}

func TestRegistryAuthenticate(t *testing.T) {
	t.Parallel()
	env, _, err := ParseEnv([]string{"ops:ops-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	file, err := ParseFile([]byte(`tokens:
  - name: ci
    token_sha256: "`+sumHex("ci-token-0123456789")+`"
    kinds: [model]
    names: ["ci-*", "tmp-?"]
    max_ids_per_day: 5000
    may: [rules, deadletters]
`), "tokens.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewRegistry(append(env, file...))
	if err != nil {
		t.Fatal(err)
	}
	auth := func(header string) (Principal, bool) {
		r := httptest.NewRequest("GET", "/", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		return g.Authenticate(r)
	}
	p, ok := auth("Bearer ci-token-0123456789")
	want := Principal{Name: "ci", Scope: Scope{Kinds: []modelid.Kind{modelid.KindModel}, Names: []string{"ci-*", "tmp-?"}, MaxIDsPerDay: 5000,
		May: []Right{RightRules, RightDeadLetters}}}
	if diff := cmp.Diff(want, p); !ok || diff != "" {
		t.Errorf("ci token: ok %v (-want +got)\n%s", ok, diff)
	}
	if !p.Scope.AllowsKind(modelid.KindModel) || p.Scope.AllowsKind(modelid.KindVersion) || !p.Scope.Allows(RightRules) || p.Scope.Allows(RightCancel) {
		t.Errorf("scope %+v answers wrongly", p.Scope)
	}
	if p, ok := auth("bearer ops-token-0123456789"); !ok || p.Name != "ops" || !p.Scope.Allows(RightCancel) || !p.Scope.AllowsKind(modelid.KindVersion) {
		t.Errorf("ops token: %+v %v", p, ok)
	}
	for _, h := range []string{"", "Bearer ci-token-012345678", "Bearer ci-token-0123456789x", "Basic Y2k6eA==", "Bearer " + sumHex("ci-token-0123456789")} {
		if p, ok := auth(h); ok {
			t.Errorf("%q accepted as %s", h, p.Name)
		}
	}
	if _, ok := (*Registry)(nil).Authenticate(httptest.NewRequest("GET", "/", nil)); ok {
		t.Error("a nil registry accepted a request")
	}

	ctx := WithPrincipal(context.Background(), want)
	if got, ok := PrincipalFrom(ctx); !ok || got.Name != "ci" {
		t.Errorf("PrincipalFrom = %+v %v", got, ok)
	}
	if _, ok := PrincipalFrom(context.Background()); ok {
		t.Error("a principal in a bare context")
	}
}

func TestNewRegistryRefusesRepeats(t *testing.T) {
	t.Parallel()
	a := Named{Name: "ci", Sum: sha256.Sum256([]byte("a")), Origin: "a.yaml:2"}
	b := Named{Name: "ci", Sum: sha256.Sum256([]byte("b")), Origin: "a.yaml:5"}
	if _, err := NewRegistry([]Named{a, b}); err == nil || !strings.Contains(err.Error(), `a.yaml:5: token name "ci" is already used by a.yaml:2`) {
		t.Errorf("repeated name: %v", err)
	}
	b.Name, b.Sum = "ops", a.Sum
	if _, err := NewRegistry([]Named{a, b}); err == nil || !strings.Contains(err.Error(), "a.yaml:5: the same token as a.yaml:2") {
		t.Errorf("repeated token: %v", err)
	}
	if _, err := NewRegistry(nil); err != ErrNone {
		t.Errorf("no tokens: %v", err)
	}
}

func TestParseFileRefuses(t *testing.T) {
	t.Parallel()
	sum := sumHex("x")
	for _, tc := range []struct{ name, doc, want string }{
		{"empty", ``, "t.yaml:1: the file is empty"},
		{"not a mapping", `- a`, "t.yaml:1: want a mapping"},
		{"unknown top key", "tokens: []\nextra: 1", `t.yaml:2: unknown key "extra"`},
		{"empty list", "tokens: []", "t.yaml:1: tokens must be a non-empty list"},
		{"unknown key", "tokens:\n  - name: ci\n    token_sha256: " + sum + "\n    kind: [model]", `t.yaml:4: unknown key "kind"`},
		{"a token, not its hash", "tokens:\n  - name: ci\n    token: abcdefabcdefabcdef", `t.yaml:3: unknown key "token": the file holds token_sha256`},
		{"no name", "tokens:\n  - token_sha256: " + sum, "t.yaml:2: the entry has no name"},
		{"no hash", "tokens:\n  - name: ci", "t.yaml:2: the entry has no token_sha256"},
		{"short hash", "tokens:\n  - name: ci\n    token_sha256: abc", "t.yaml:3: token_sha256: want the 64 hex digits"},
		{"bad name", "tokens:\n  - name: c i\n    token_sha256: " + sum, `t.yaml:2: token name "c i"`},
		{"repeated key", "tokens:\n  - name: ci\n    name: ops\n    token_sha256: " + sum, `t.yaml:3: key "name" given twice (first on line 2)`},
		{"bad kind", "tokens:\n  - name: ci\n    token_sha256: " + sum + "\n    kinds: [dataset]", `t.yaml:4: kinds: unknown kind "dataset"`},
		{"kinds not a list", "tokens:\n  - name: ci\n    token_sha256: " + sum + "\n    kinds: model", "t.yaml:4: kinds: want a non-empty list"},
		{"bad glob", "tokens:\n  - name: ci\n    token_sha256: " + sum + "\n    names: [\"ci-[\"]", `t.yaml:4: names: "ci-[" is not a glob`},
		{"zero quota", "tokens:\n  - name: ci\n    token_sha256: " + sum + "\n    max_ids_per_day: 0", "t.yaml:4: max_ids_per_day: want a whole number of at least 1"},
		{"quota as string", "tokens:\n  - name: ci\n    token_sha256: " + sum + "\n    max_ids_per_day: \"5\"", "t.yaml:4: max_ids_per_day"},
		{"unknown right", "tokens:\n  - name: ci\n    token_sha256: " + sum + "\n    may: [everything]", `t.yaml:4: may: unknown right "everything": want rules, deadletters, cancel`},
		{"bad YAML", "tokens:\n  - name: [", "t.yaml: yaml: line"},
	} {
		_, err := ParseFile([]byte(tc.doc), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	// Every problem is reported, not just the first.
	_, err := ParseFile([]byte("tokens:\n  - name: ci\n    bad: 1\n  - name: ops\n    worse: 2\n"), "t.yaml")
	for _, want := range []string{"t.yaml:3:", "t.yaml:5:", "t.yaml:2: the entry has no token_sha256", "t.yaml:4: the entry has no token_sha256"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("several problems: %v, want %q among them", err, want)
		}
	}
	// A hash of digits only may go unquoted.
	digits := strings.Repeat("1", 64)
	if _, err := ParseFile([]byte("tokens:\n  - name: ci\n    token_sha256: "+digits), "t.yaml"); err != nil {
		t.Errorf("unquoted digits: %v", err)
	}
}
