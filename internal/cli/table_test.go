package cli

import (
	"strings"
	"testing"
	"text/tabwriter"
)

// TestTableLikeTabwriter: on ASCII text a Table lays out exactly as
// text/tabwriter with the settings the commands used, ragged lines and
// column blocks included.
func TestTableLikeTabwriter(t *testing.T) {
	for _, in := range []string{
		"ID\tNAME\tWHY\n1\tm\tok\n22222\tmodel-long\t\n",
		"a\tb\nccc\n\tdd\teee\tf\nxx\tyyyy\n",
		"no tabs at all\nsecond\n",
		"head\tx\nlast line without newline\ty",
		"\t\t\n\ta\n",
		"",
	} {
		var want, got strings.Builder
		tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', 0)
		tw.Write([]byte(in))
		tw.Flush()
		tb := NewTable(&got)
		tb.Write([]byte(in))
		if err := tb.Flush(); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%q:\ngot\n%s\nwant (text/tabwriter)\n%s", in, got.String(), want.String())
		}
	}
}

// TestTableWideCharacters: columns after a Chinese model name start at the
// same display column on every line.
func TestTableWideCharacters(t *testing.T) {
	var b strings.Builder
	tb := NewTable(&b)
	tb.Write([]byte("ID\tNAME\tTYPE\n585\t文心一言微调模型\tint\nam-1\tplain-model\tstring\n7\tｆｕｌｌｗｉｄｔｈ\tint\n"))
	if err := tb.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	col := -1
	for _, l := range lines {
		// The display column where the third cell starts.
		i := strings.LastIndex(strings.TrimRight(l, " "), " ") + 1
		c := DisplayWidth(l[:i])
		if col == -1 {
			col = c
		} else if c != col {
			t.Errorf("the third column starts at display column %d, want %d:\n%s", c, col, b.String())
		}
	}
	// The widest name is the fullwidth one (9 characters, 18 columns).
	if want := DisplayWidth("am-1  ") + DisplayWidth("ｆｕｌｌｗｉｄｔｈ") + 2; col != want {
		t.Errorf("third column at %d, want %d:\n%s", col, want, b.String())
	}
}

func TestDisplayWidth(t *testing.T) {
	for s, want := range map[string]int{
		"": 0, "model-1": 7, "文心": 4, "ERNIE-文心": 10, "ｆｕｌｌ": 8, "한국어": 6, "モデル": 6,
		"e\u0301": 1, // e and a combining acute accent
		"ﾊﾝｶｸ":    4, // halfwidth katakana
	} {
		if got := DisplayWidth(s); got != want {
			t.Errorf("DisplayWidth(%q) = %d, want %d", s, got, want)
		}
	}
}
