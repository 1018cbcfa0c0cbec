package modelid

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var cmpID = cmp.Comparer(func(a, b ID) bool { return a == b })

func TestParseIDs(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		asString bool
		want     []ID
		badLines []int
	}{
		{"lines", "585\n\n# comment\nam-x\n  586  \n", false,
			[]ID{IntID(585), StringID("am-x"), IntID(586)}, nil},
		{"lines as strings", "585\nam-x\n", true,
			[]ID{StringID("585"), StringID("am-x")}, nil},
		{"JSON lines keep their type", "585\n\"586\"\n[587, \"am-y\"]\n", false,
			[]ID{IntID(585), StringID("586"), IntID(587), StringID("am-y")}, nil},
		{"one JSON array over lines", "[\n  585,\n  \"am-z\"\n]\n", false,
			[]ID{IntID(585), StringID("am-z")}, nil},
		{"JSON arrays in sequence", "[1,2]\n[\"a\"]", false,
			[]ID{IntID(1), IntID(2), StringID("a")}, nil},
		{"bad lines reported", "585\n0\nam x\n-4\n12abc\n", false, nil, []int{2, 3, 4}},
		{"bad JSON elements reported with lines", "[\n  1,\n  1.5,\n  \"\",\n  {}\n]", false, nil, []int{3, 4, 5}},
		{"malformed JSON", "[1, 2", false, nil, []int{1}},
		{"empty", "", false, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIDs(strings.NewReader(tt.in), tt.asString)
			var ie *InvalidIDsError
			if tt.badLines != nil {
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v, want InvalidIDsError", err)
				}
				var lines []int
				for _, v := range ie.Invalid {
					lines = append(lines, v.Index)
				}
				if diff := cmp.Diff(tt.badLines, lines); diff != "" {
					t.Errorf("bad lines (-want +got):\n%s", diff)
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
