package modelid

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var cmpID = cmp.Comparer(func(a, b ID) bool { return a == b })

func TestParseIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		kind     Kind
		want     []ID
		badLines []int
		reason   string // a substring of the first reason
	}{
		{name: "lines", in: "585\n\n# comment\nam-x\n  586  \n",
			want: []ID{IntID(585), StringID("am-x"), IntID(586)}},
		{name: "CRLF", in: "585\r\nam-x\r\n\r\n586\r\n",
			want: []ID{IntID(585), StringID("am-x"), IntID(586)}},
		{name: "no final newline", in: "585\n586",
			want: []ID{IntID(585), IntID(586)}},
		{name: "BOM stripped", in: "\ufeff910001\n910002\n",
			want: []ID{IntID(910001), IntID(910002)}},
		{name: "BOM before a JSON array over lines", in: "\ufeff[\n  585,\n  \"am-z\"\n]\n",
			want: []ID{IntID(585), StringID("am-z")}},
		{name: "JSON lines keep their type", in: "585\n\"am-y\"\n[587, \"am-w\"]\n",
			want: []ID{IntID(585), StringID("am-y"), IntID(587), StringID("am-w")}},
		{name: "one JSON array over lines", in: "[\n  585,\n  \"am-z\"\n]\n",
			want: []ID{IntID(585), StringID("am-z")}},
		{name: "JSON arrays in sequence", in: "[1,2]\n[\"am-a\"] 3",
			want: []ID{IntID(1), IntID(2), StringID("am-a"), IntID(3)}},
		{name: "empty", in: ""},
		{name: "only a BOM and blanks", in: "\ufeff\n\n"},
		{name: "empty array", in: "[]"},
		{name: "bad lines reported", in: "585\n0\nam x\n-4\n12abc\n", badLines: []int{2, 3, 4, 5}},
		{name: "a BOM inside", in: "585\n\ufeff586\n", badLines: []int{2}, reason: "byte-order mark"},
		{name: "CSV pasted", in: "585,\n586,\n", badLines: []int{1, 2}, reason: `stray ","`},
		{name: "fraction", in: "1.5\n", badLines: []int{1}, reason: "not a whole number"},
		{name: "zero-width", in: "585\u200b\n", badLines: []int{1}, reason: "zero-width space"},
		{name: "quoted number", in: "\"585\"\n", badLines: []int{1}, reason: "quoted number"},
		{name: "string of another form", in: "s-1\n", badLines: []int{1}, reason: "not an ID"},
		{name: "a flag in a file", in: "585\n--kind\n", badLines: []int{2}, reason: "misplaced flag"},
		{name: "bad JSON elements reported with lines", in: "[\n  1,\n  1.5,\n  \"\",\n  {},\n  [2],\n  true\n]",
			badLines: []int{3, 4, 5, 6, 7}},
		{name: "quoted number in JSON", in: `[585, "586"]`, badLines: []int{1}, reason: "quoted number"},
		{name: "BOM inside a JSON string", in: `["\ufeff12"]`, badLines: []int{1}, reason: "byte-order mark"},
		{name: "malformed JSON", in: "[1, 2", badLines: []int{1}, reason: "malformed JSON"},
		{name: "malformed JSON on line 3", in: "[\n1,\n2 3]", badLines: []int{3}, reason: "want ',' or ']'"},
		{name: "trailing comma in JSON", in: "[1,\n]", badLines: []int{2}, reason: "malformed JSON"},
		{name: "malformed JSON line spoils only that line", in: "585\n[1,\n586\n\"am-x\n", badLines: []int{2, 4}},
		{name: "UTF-16", in: "\xff\xfe5\x008\x005\x00", badLines: []int{1}, reason: "UTF-16"},
		{name: "version ID as a model", in: "585\namv-1\n", kind: KindModel, badLines: []int{2}, reason: "kind version"},
		{name: "model ID as a version", in: `["am-1", "amv-2"]`, kind: KindVersion, badLines: []int{1}, reason: "kind model"},
		{name: "kinds that fit", in: "am-1\n", kind: KindModel, want: []ID{StringID("am-1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIDs(strings.NewReader(tt.in), tt.kind)
			if tt.badLines != nil {
				ie, ok := errors.AsType[*InvalidIDsError](err)
				if !ok {
					t.Fatalf("err = %v, IDs %v; want InvalidIDsError", err, got)
				}
				var lines []int
				for _, v := range ie.Invalid {
					lines = append(lines, v.Index)
				}
				if diff := cmp.Diff(tt.badLines, lines); diff != "" {
					t.Errorf("bad lines (-want +got):\n%s\n%v", diff, ie)
				}
				if tt.reason != "" && !strings.Contains(ie.Invalid[0].Reason, tt.reason) {
					t.Errorf("reason %q, want it to say %q", ie.Invalid[0].Reason, tt.reason)
				}
				if got != nil {
					t.Errorf("IDs %v returned with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpID); diff != "" {
				t.Errorf("IDs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLongLine(t *testing.T) {
	t.Parallel()
	in := "585\n" + strings.Repeat("9", MaxLine+10) + "\n586\n"
	_, err := ParseIDs(strings.NewReader(in), KindModel)
	ie, ok := errors.AsType[*InvalidIDsError](err)
	if !ok || len(ie.Invalid) != 1 || ie.Invalid[0].Index != 2 || !strings.Contains(ie.Invalid[0].Reason, "line is over") {
		t.Fatalf("err = %v, want line 2 over the limit", err)
	}
	if len(ie.Invalid[0].Text) > 100 {
		t.Errorf("text of %d bytes in the report", len(ie.Invalid[0].Text))
	}
}

func TestInvalidIDsAreCounted(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("x\n", maxReported+5)
	_, err := ParseIDs(strings.NewReader(in), KindModel)
	ie, ok := errors.AsType[*InvalidIDsError](err)
	if !ok || len(ie.Invalid) != maxReported || ie.Count() != maxReported+5 {
		t.Fatalf("err %v", err)
	}
	if !strings.HasPrefix(err.Error(), "1005 invalid IDs, nothing enqueued") {
		t.Errorf("message %q", err.Error()[:60])
	}
	one := &InvalidIDsError{Invalid: []InvalidID{{Index: 1, Text: "x", Reason: "r"}}}
	if !strings.HasPrefix(one.Error(), "1 invalid ID, nothing enqueued") {
		t.Errorf("message %q", one.Error())
	}
}

// endless is a JSON array that never ends; reads counts the bytes taken.
type endless struct{ reads int }

func (e *endless) Read(p []byte) (int, error) {
	if e.reads == 0 {
		p[0] = '['
		e.reads++
		return 1, nil
	}
	const el = "123456,"
	n := 0
	for n+len(el) <= len(p) {
		n += copy(p[n:], el)
	}
	e.reads += n
	return n, nil
}

// TestScannerStreams: the first ID of a huge array comes before the array
// is read, so memory follows the token, not the input.
func TestScannerStreams(t *testing.T) {
	t.Parallel()
	src := &endless{}
	sc := NewScanner(src, KindModel)
	for i := range 100_000 {
		if !sc.Scan() {
			t.Fatalf("Scan stopped at %d: %v", i, sc.Err())
		}
		if _, bad := sc.Invalid(); bad || sc.ID() != IntID(123456) {
			t.Fatalf("entry %d: %v", i, sc.ID())
		}
	}
	if src.reads > 100_000*7+128<<10 {
		t.Errorf("read %d bytes for 100,000 IDs", src.reads)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestReadErrorIsNotBadInput(t *testing.T) {
	t.Parallel()
	_, err := ParseIDs(io.MultiReader(bytes.NewReader([]byte("585\n")), failingReader{}), KindModel)
	if err == nil || errors.As(err, new(*InvalidIDsError)) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v, want the read error", err)
	}
}
