package cli

import (
	"bytes"
	"io"
	"strings"

	"github.com/rivo/uniseg"
)

// Table aligns tab-separated columns as text/tabwriter does (minimum width
// 0, padding 2, spaces), but by display width: text/tabwriter counts a
// Chinese character as one column where a terminal shows two, so a model
// named in Chinese pushed the columns after it out of line. Write lines
// of cells, each ended by a tab but the last, then Flush.
type Table struct {
	w   io.Writer
	buf bytes.Buffer
}

// tablePadding is the space between two columns.
const tablePadding = 2

// NewTable returns a Table writing to w on Flush.
func NewTable(w io.Writer) *Table { return &Table{w: w} }

// Write buffers p; nothing reaches the writer before Flush.
func (t *Table) Write(p []byte) (int, error) { return t.buf.Write(p) }

// Flush writes the buffered lines aligned and empties the buffer.
func (t *Table) Flush() error {
	text := t.buf.String()
	t.buf.Reset()
	if text == "" {
		return nil
	}
	nl := strings.HasSuffix(text, "\n")
	var lines [][]string
	for l := range strings.SplitSeq(strings.TrimSuffix(text, "\n"), "\n") {
		lines = append(lines, strings.Split(l, "\t"))
	}
	f := tableFormat{lines: lines}
	f.format(0, len(lines))
	out := f.out.String()
	if !nl {
		out = strings.TrimSuffix(out, "\n")
	}
	_, err := io.WriteString(t.w, out)
	return err
}

// tableFormat lays out lines as text/tabwriter's format does: a column
// block is a run of consecutive lines that have a tab-ended cell in that
// column, and its width is its widest cell's plus the padding.
type tableFormat struct {
	lines  [][]string
	widths []int
	out    strings.Builder
}

func (f *tableFormat) format(line0, line1 int) {
	column := len(f.widths)
	for this := line0; this < line1; this++ {
		if column >= len(f.lines[this])-1 {
			continue
		}
		// A cell in this column: print the lines before it, then lay
		// out the block it starts.
		f.write(line0, this)
		line0 = this
		w := 0
		for ; this < line1 && column < len(f.lines[this])-1; this++ {
			w = max(w, DisplayWidth(f.lines[this][column])+tablePadding)
		}
		f.widths = append(f.widths, w)
		f.format(line0, this)
		f.widths = f.widths[:len(f.widths)-1]
		line0 = this
	}
	f.write(line0, line1)
}

func (f *tableFormat) write(line0, line1 int) {
	for _, line := range f.lines[line0:line1] {
		for j, c := range line {
			f.out.WriteString(c)
			if j < len(f.widths) {
				f.out.WriteString(strings.Repeat(" ", max(f.widths[j]-DisplayWidth(c), 0)))
			}
		}
		f.out.WriteByte('\n')
	}
}

// DisplayWidth is how many terminal columns s takes: two for East Asian
// wide and fullwidth characters, none for combining marks, by grapheme
// cluster as uniseg measures it.
func DisplayWidth(s string) int { return uniseg.StringWidth(s) }
