package modelid

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		in       string
		asString bool
		want     ID
		wantErr  bool
	}{
		{"585", false, IntID(585), false},
		{"585", true, StringID("585"), false},
		{"am-xyz", false, StringID("am-xyz"), false},
		{"0", false, ID{}, true},
		{"-3", false, ID{}, true},
		{"99999999999999999999", false, ID{}, true},
		{"", false, ID{}, true},
		{"am x", false, ID{}, true},
		{"am\x01x", false, ID{}, true},
		{string(make([]byte, MaxStringIDLen+1)), false, ID{}, true},
	}
	for _, tt := range tests {
		got, err := ParseID(tt.in, tt.asString)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseID(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("ParseID(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestIDJSONKeepsType(t *testing.T) {
	in := []ID{IntID(585), StringID("am-1"), StringID("586")}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `[585,"am-1","586"]`; got != want {
		t.Errorf("marshal = %s, want %s", got, want)
	}
	var out []ID
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out, cmp.AllowUnexported(ID{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`[1.5]`), &out); err == nil {
		t.Error("1.5 was accepted as an ID")
	}
}
