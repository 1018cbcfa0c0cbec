package enqueuecmd

import (
	"strings"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/inuse"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// TestDryRunTableWideNames: the dry run's columns line up on screen when
// model names are Chinese (two columns a character) beside Latin ones.
func TestDryRunTableWideNames(t *testing.T) {
	at := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	var b strings.Builder
	err := printAnswers(&b, []inuse.Answer{
		{ID: modelid.StringID("am-1"), Outcome: inuse.OutcomeExists, Name: "文心一言客服微调", Type: "ernie", Created: at},
		{ID: modelid.StringID("am-2"), Outcome: inuse.OutcomeExists, Name: "plain-model", Type: "llama", Created: at},
		{ID: modelid.StringID("am-3"), Outcome: inuse.OutcomeInUse, Name: "千帆", Type: "glm", Created: at, Users: []string{"svc"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	want := cli.DisplayWidth(lines[0][:strings.Index(lines[0], "TYPE")])
	for i, typ := range []string{"ernie", "llama", "glm"} {
		l := lines[i+1]
		if got := cli.DisplayWidth(l[:strings.Index(l, typ)]); got != want {
			t.Errorf("row %d: TYPE at display column %d, want %d:\n%s", i+1, got, want, b.String())
		}
	}
}
