package modelid

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ID
		wantErr string // a substring of the error; "" for success
	}{
		{"585", IntID(585), ""},
		{"9223372036854775807", IntID(1<<63 - 1), ""},
		{"am-xyz", StringID("am-xyz"), ""},
		{"amv-0a1B_c-d", StringID("amv-0a1B_c-d"), ""},
		{"0", ID{}, "positive"},
		{"-3", ID{}, "positive"},
		{"+3", ID{}, "without '+'"},
		{"0585", ID{}, "leading zero: write 585"},
		{"99999999999999999999", ID{}, "too large"},
		{"", ID{}, "empty"},
		{"1.5", ID{}, "not a whole number"},
		{"585.0", ID{}, "not a whole number"},
		{"1e3", ID{}, "not a whole number"},
		{"585,", ID{}, `stray ","`},
		{"585;", ID{}, `stray ";"`},
		{"--kind", ID{}, "misplaced flag"},
		{"-f", ID{}, "misplaced flag"},
		{"\ufeff910001", ID{}, "byte-order mark"},
		{"910001\u200b", ID{}, "zero-width space"},
		{"am-\u202ex", ID{}, "bidirectional control"},
		{"am-x\u00a0", ID{}, "no-break space"},
		{"am x", ID{}, "a space"},
		{"am\x01x", ID{}, "control character"},
		{"am-\xffx", ID{}, "UTF-8"},
		{"AM-xyz", ID{}, "lower-case"},
		{"am-", ID{}, "nothing after"},
		{"am-x.y", ID{}, `holds '.'`},
		{"am-ä", ID{}, `holds 'ä'`},
		{"s-1", ID{}, "not an ID"},
		{"unreadable", ID{}, "not an ID"},
		{"５８５", ID{}, "not an ID"},
		{"am-" + strings.Repeat("x", MaxStringIDLen), ID{}, "over the 128-byte limit"},
	}
	for _, tt := range tests {
		got, err := ParseID(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseID(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseID(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestParseJSONID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ID
		wantErr string
	}{
		{`585`, IntID(585), ""},
		{`"am-1"`, StringID("am-1"), ""},
		{`"\u0061m-1"`, StringID("am-1"), ""},
		{`"585"`, ID{}, "a quoted number is not an ID"},
		{`"\ufeff12"`, ID{}, "byte-order mark"},
		{`1.5`, ID{}, "not a whole number"},
		{`-3`, ID{}, "positive"},
		{`""`, ID{}, "empty"},
		{`true`, ID{}, "a boolean"},
		{`null`, ID{}, "null"},
		{`{}`, ID{}, "an object"},
		{`"s-1"`, ID{}, "not an ID"},
	}
	for _, tt := range tests {
		got, err := ParseJSONID([]byte(tt.in))
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseJSONID(%s) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseJSONID(%s) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestCheckKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id      ID
		kind    Kind
		wantErr string
	}{
		{IntID(5), KindModel, ""},
		{IntID(5), KindVersion, ""},
		{StringID("am-x"), KindModel, ""},
		{StringID("amv-x"), KindVersion, ""},
		{StringID("amv-x"), KindModel, "send it with kind version"},
		{StringID("am-x"), KindVersion, "send it with kind model"},
	}
	for _, tt := range tests {
		err := tt.id.ValidateFor(tt.kind)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%v as %s: %v", tt.id, tt.kind, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrWrongKind) {
			t.Errorf("%v as %s: error %v, want ErrWrongKind saying %q", tt.id, tt.kind, err, tt.wantErr)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, id := range []ID{IntID(0), IntID(-1), StringID("585"), StringID("s-1"), StringID("a b"), StringID("\ufeffam-x")} {
		if err := id.Validate(); err == nil {
			t.Errorf("%#v is valid, want an error", id)
		}
	}
	for _, id := range []ID{IntID(1), StringID("am-x"), StringID("amv-x")} {
		if err := id.Validate(); err != nil {
			t.Errorf("%#v: %v", id, err)
		}
	}
}

func TestIDJSONKeepsType(t *testing.T) {
	t.Parallel()
	in := []ID{IntID(585), StringID("am-1"), StringID("unreadable")}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `[585,"am-1","unreadable"]`; got != want {
		t.Errorf("marshal = %s, want %s", got, want)
	}
	var out []ID
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out, cmp.AllowUnexported(ID{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`[1.5]`, `[""]`, `["\ufeff12"]`, `["a\u200bb"]`, `[true]`} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Errorf("%s was accepted as an ID", bad)
		}
	}
}

func TestStored(t *testing.T) {
	t.Parallel()
	if id, err := Stored("unreadable", IDString); err != nil || id != StringID("unreadable") {
		t.Errorf("Stored string: %#v %v", id, err)
	}
	if id, err := Stored("585", IDInt); err != nil || id != IntID(585) {
		t.Errorf("Stored int: %#v %v", id, err)
	}
	if _, err := Stored("x", IDInt); err == nil {
		t.Error("Stored int x: no error")
	}
}
