package rulescmd

import (
	"strings"
	"testing"
	"time"

	"github.com/qfpurge/qfpurge/internal/cli"
	"github.com/qfpurge/qfpurge/internal/policy"
)

// TestItemsTableWideNames: a rule's dry-run table lines up on screen when
// model names are Chinese (two columns a character) beside Latin ones.
func TestItemsTableWideNames(t *testing.T) {
	at := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	items := []policy.ItemOutcome{
		{Item: policy.Item{Action: policy.ActionDelete, ID: "am-1", Name: "文心一言客服微调", Created: at, Reason: "older than 30d"}},
		{Item: policy.Item{Action: policy.ActionKeep, ID: "am-22", Name: "plain-model", Created: at, Reason: "newest 3"}},
		{Item: policy.Item{Action: policy.ActionDelete, ID: "am-3", Name: "千帆", Created: at, Reason: "older than 30d"}},
	}
	var b strings.Builder
	printItems(&b, policy.Record{Kind: "model"}, items, false)
	lines := strings.Split(b.String(), "\n")
	want := cli.DisplayWidth(lines[0][:strings.Index(lines[0], "CREATED")])
	for i, l := range lines[1:4] {
		if got := cli.DisplayWidth(l[:strings.Index(l, "2026-03-04")]); got != want {
			t.Errorf("row %d: CREATED at display column %d, want %d:\n%s", i+1, got, want, b.String())
		}
	}
}
