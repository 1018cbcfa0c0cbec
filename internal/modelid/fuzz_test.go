package modelid

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
)

// seeds are the inputs people and programs actually produce, and the ones
// that once slipped through.
var seeds = []string{
	"585\n586\n", "585\r\n586\r\n", "\ufeff910001\n", "\ufeff[\n585,\n\"am-x\"\n]\n",
	"\xff\xfe5\x008\x00", "585,\n586,\n", "1.5\n", "1e3", "-3", "+3", "0585", "0",
	"99999999999999999999", "9223372036854775807", "9223372036854775808",
	"585\u200b", "am-\u200dx", "am-x\u202e", "\u2066585\u2069", "am-x\u00a0", "a\u00adm-x",
	"--kind\nversion\n", "-f\n", "--\n585", "am-x\namv-y\n", "AM-x", "am-", "amv-",
	`[585, "am-x", "amv-y"]`, `[585, "585"]`, `["\ufeff12"]`, `[1.5, true, null, {}, [2]]`,
	"[1,2]\n[\"am-a\"] 3", "585\n[1,\n", "[", "]", `"`, `"am-x`, "# only a comment\n",
	"[\"am-\\u0078\"]", "\"\\ud800\"", "[\"a\\\"b\"]", "\x00\x01", "am-x\tam-y",
}

// FuzzParseIDs: never panics; what it accepts is clean, round-trips through
// ParseID, and reads the same as lines and as a JSON array.
func FuzzParseIDs(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ids, err := ParseIDs(bytes.NewReader(in), "")
		if err != nil {
			if _, ok := err.(*InvalidIDsError); !ok {
				t.Fatalf("non-input error from a byte slice: %v", err)
			}
			return
		}
		checkAccepted(t, ids)
		var lines strings.Builder
		for _, id := range ids {
			lines.WriteString(id.String() + "\n")
		}
		fromLines, err := ParseIDs(strings.NewReader(lines.String()), "")
		if err != nil || !equalIDs(ids, fromLines) {
			t.Fatalf("as lines: %v %v, want %v", fromLines, err, ids)
		}
		js, _ := json.Marshal(append([]ID{}, ids...))
		fromJSON, err := ParseIDs(bytes.NewReader(js), "")
		if err != nil || !equalIDs(ids, fromJSON) {
			t.Fatalf("as JSON %s: %v %v, want %v", js, fromJSON, err, ids)
		}
	})
}

// FuzzParseID: one bare ID either fails or round-trips and is clean.
func FuzzParseID(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		checkAccepted(t, []ID{id})
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %q: accepted text must be the ID itself", s, id)
		}
	})
}

func checkAccepted(t *testing.T, ids []ID) {
	t.Helper()
	for _, id := range ids {
		if err := id.Validate(); err != nil {
			t.Fatalf("accepted %q, which Validate refuses: %v", id, err)
		}
		again, err := ParseID(id.String())
		if err != nil || again != id {
			t.Fatalf("round trip of %#v: %#v %v", id, again, err)
		}
		for _, r := range id.String() {
			if unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) || r > unicode.MaxASCII {
				t.Fatalf("accepted %q holds %U", id, r)
			}
		}
	}
}

func equalIDs(a, b []ID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
