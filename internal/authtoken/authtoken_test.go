package authtoken

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckTokens(t *testing.T) {
	if err := CheckTokens(nil); !errors.Is(err, ErrNone) {
		t.Errorf("CheckTokens(nil) = %v, want ErrNone", err)
	}
	long := strings.Repeat("x", MinLen)
	if err := CheckTokens([]string{long}); err != nil {
		t.Errorf("a %d-character token refused: %v", MinLen, err)
	}
	err := CheckTokens([]string{long, "s3cret"})
	if err == nil || !strings.Contains(err.Error(), "token #2") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("short token: %v; want it named by position, never by value", err)
	}
}

func TestSplit(t *testing.T) {
	got := Split(" a , ,b,")
	if len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("Split = %q", got)
	}
}

func TestAllows(t *testing.T) {
	tok := "token-0123456789abcdef"
	s := NewSet([]string{"other-0123456789abcdef", tok}, "ops", "pw-0123456789")
	for _, tc := range []struct {
		name  string
		setup func(r *http.Request)
		want  bool
	}{
		{"no credentials", func(*http.Request) {}, false},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, true},
		{"bearer, scheme in other case", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }, true},
		{"bearer, wrong token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok+"x") }, false},
		{"bearer, prefix of a token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok[:10]) }, false},
		{"basic", func(r *http.Request) { r.SetBasicAuth("ops", "pw-0123456789") }, true},
		{"basic, wrong password", func(r *http.Request) { r.SetBasicAuth("ops", "pw") }, false},
		{"basic, shifted boundary", func(r *http.Request) { r.SetBasicAuth("op", "spw-0123456789") }, false},
		{"basic with a token as password", func(r *http.Request) { r.SetBasicAuth("x", tok) }, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		tc.setup(r)
		if got := s.Allows(r); got != tc.want {
			t.Errorf("%s: Allows = %v, want %v", tc.name, got, tc.want)
		}
	}
	if (&Set{}).Allows(httptest.NewRequest("GET", "/", nil)) {
		t.Error("the zero Set allowed a request")
	}
}
