package modelid

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxLine bounds one line of text input; no valid ID comes near it. A longer
// line is an invalid entry, not a read error.
const MaxLine = 1 << 20

// maxToken bounds the JSON string or number kept for a message.
const maxToken = 4 << 10

// maxReported bounds the invalid entries ParseIDs lists; the rest are
// counted.
const maxReported = 1000

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Scanner reads IDs from text one at a time, holding no more than one line
// (or one JSON token) of it. The text is one ID per line (blank lines and
// lines starting with # skipped; a line may also hold a JSON string or
// array), or, when it starts with '[', JSON: arrays, numbers and strings,
// spanning lines as they like. A UTF-8 byte-order mark at the start is
// skipped. Every entry is judged by ParseID, ParseString or ParseJSONID and,
// when a kind is given, CheckKind.
type Scanner struct {
	kind  Kind
	lex   lexer // the input
	one   lexer // one line holding JSON, in line mode
	lineR bytes.Reader
	mode  byte // 0 before the first entry, 'l' lines, 'j' JSON
	line  int  // line mode: the line to read next
	buf   []byte
	queue []entry
	qi    int
	cur   entry
	err   error
	done  bool
}

type entry struct {
	id  ID
	bad *InvalidID
}

// NewScanner reads from r. When k is set, string IDs of the other kind are
// invalid entries.
func NewScanner(r io.Reader, k Kind) *Scanner {
	s := &Scanner{kind: k}
	s.lex = lexer{r: bufio.NewReaderSize(r, 64<<10), line: 1, s: s}
	s.one = lexer{r: bufio.NewReaderSize(nil, 4<<10), s: s}
	return s
}

// Scan advances to the next entry, valid or not. It returns false at the end
// of the input, after malformed JSON (reported as an invalid entry), or on a
// read error (see Err).
func (s *Scanner) Scan() bool {
	for s.qi >= len(s.queue) {
		s.queue, s.qi = s.queue[:0], 0
		if s.done {
			return false
		}
		switch s.mode {
		case 0:
			s.start()
		case 'l':
			s.readLine()
		default:
			s.readJSON()
		}
	}
	s.cur = s.queue[s.qi]
	s.qi++
	return true
}

// ID is the current entry's ID; the zero ID when it is invalid.
func (s *Scanner) ID() ID { return s.cur.id }

// Invalid reports whether the current entry is invalid, and why.
func (s *Scanner) Invalid() (InvalidID, bool) {
	if s.cur.bad == nil {
		return InvalidID{}, false
	}
	return *s.cur.bad, true
}

// Err is the read error that stopped Scan, if any. Bad input is never an
// Err: it comes as invalid entries.
func (s *Scanner) Err() error { return s.err }

func (s *Scanner) start() {
	r := s.lex.r
	if b, _ := r.Peek(3); bytes.Equal(b, utf8BOM) {
		_, _ = r.Discard(3)
	} else if b, _ := r.Peek(2); len(b) == 2 && (b[0] == 0xFF && b[1] == 0xFE || b[0] == 0xFE && b[1] == 0xFF) {
		s.bad(1, "", "the input is UTF-16: save it as UTF-8")
		s.done = true
		return
	}
	c, err := s.lex.peekNonSpace()
	if err != nil {
		s.stop(err)
		return
	}
	s.mode, s.line = 'l', s.lex.line
	if c == '[' {
		s.mode = 'j'
	}
}

func (s *Scanner) stop(err error) {
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, errStop) {
		s.err = err
	}
	s.done = true
}

func (s *Scanner) bad(line int, text, reason string) {
	s.queue = append(s.queue, entry{bad: &InvalidID{Index: line, Text: clip(text), Reason: reason}})
}

func (s *Scanner) add(line int, text []byte, id ID, err error) {
	if err == nil && s.kind != "" {
		err = id.CheckKind(s.kind)
	}
	if err != nil {
		s.bad(line, string(text), err.Error())
		return
	}
	s.queue = append(s.queue, entry{id: id})
}

func (s *Scanner) readJSON() {
	if err := s.lex.step(); err != nil {
		s.stop(err)
	}
}

func (s *Scanner) readLine() {
	line, tooLong, err := s.nextLine()
	n := s.line
	s.line++
	if len(line) > 0 || tooLong {
		s.lineEntries(n, line, tooLong)
	}
	if err != nil {
		s.stop(err)
	}
}

// nextLine returns the next line, or its first MaxLine bytes and tooLong.
func (s *Scanner) nextLine() (line []byte, tooLong bool, err error) {
	s.buf = s.buf[:0]
	for {
		frag, err := s.lex.r.ReadSlice('\n')
		if len(s.buf) == 0 && !errors.Is(err, bufio.ErrBufferFull) {
			return frag, false, err // the usual case: no copy
		}
		if len(s.buf)+len(frag) <= MaxLine {
			s.buf = append(s.buf, frag...)
		} else {
			tooLong = true
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return s.buf, tooLong, err
		}
	}
}

func (s *Scanner) lineEntries(n int, line []byte, tooLong bool) {
	text := bytes.Trim(line, " \t\r\n")
	switch {
	case len(text) == 0 || text[0] == '#':
	case tooLong:
		s.bad(n, string(text), fmt.Sprintf("line is over the %d-byte limit", MaxLine))
	case text[0] == '[' || text[0] == '"':
		// JSON on one line: a bad value spoils this line only.
		s.lineR.Reset(text)
		s.one.reset(&s.lineR, n)
		for s.one.step() == nil {
		}
	default:
		if v, ok := fastIntBytes(text); ok {
			s.queue = append(s.queue, entry{id: IntID(v)})
			return
		}
		str := string(text)
		id, err := ParseID(str)
		s.add(n, text, id, err)
	}
}

func fastIntBytes(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 || b[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// errStop ends scanning after malformed JSON, which was reported as an
// invalid entry: nothing after it can be read reliably.
var errStop = errors.New("malformed JSON")

// lexer reads the JSON the Scanner accepts, one token per step: a stream
// of values that are arrays of numbers and strings, numbers or strings;
// other values are invalid entries. Stepping keeps memory to one token
// however long an array is.
type lexer struct {
	r    *bufio.Reader
	line int
	s    *Scanner
	tok  []byte
	// Where in the stream: inside an array, just after its '[', or after
	// one of its elements.
	inArray, opened, afterElem bool
}

func (l *lexer) reset(r io.Reader, line int) {
	l.r.Reset(r)
	l.line = line
	l.inArray, l.opened, l.afterElem = false, false, false
}

func (l *lexer) peekNonSpace() (byte, error) {
	for {
		c, err := l.r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case '\n':
			l.line++
		case ' ', '\t', '\r':
		default:
			_ = l.r.UnreadByte()
			return c, nil
		}
	}
}

func (l *lexer) malformed(format string, args ...any) error {
	l.s.bad(l.line, "", "malformed JSON: "+fmt.Sprintf(format, args...))
	return errStop
}

func (l *lexer) ended(err error, inside string) error {
	if errors.Is(err, io.EOF) {
		return l.malformed("the input ends inside %s", inside)
	}
	return err
}

// step reads one bracket, comma or element. It returns io.EOF at the clean
// end of the input, errStop after malformed JSON, or a read error.
func (l *lexer) step() error {
	c, err := l.peekNonSpace()
	if !l.inArray {
		if err != nil {
			return err
		}
		if c == '[' {
			_, _ = l.r.ReadByte()
			l.inArray, l.opened, l.afterElem = true, true, false
			return nil
		}
		return l.element(c)
	}
	if err != nil {
		return l.ended(err, "an array (no closing ']')")
	}
	if l.afterElem || (l.opened && c == ']') {
		_, _ = l.r.ReadByte()
		switch c {
		case ']':
			l.inArray = false
		case ',':
			l.afterElem = false
		default:
			return l.malformed("want ',' or ']' after an element, found %s", quoteByte(c))
		}
		l.opened = false
		return nil
	}
	l.opened = false
	if err := l.element(c); err != nil {
		return err
	}
	l.afterElem = true
	return nil
}

// element reads one value starting with c: an ID, or an invalid entry.
func (l *lexer) element(c byte) error {
	line := l.line
	switch {
	case c == '[' || c == '{':
		if err := l.skipComposite(); err != nil {
			return err
		}
		what := "an object"
		if c == '[' {
			what = "an array inside the array"
		}
		l.s.bad(line, "", "not an ID: "+what+" (want a whole number or a string)")
	case c == '"':
		tok, over, err := l.str()
		if err != nil {
			return err
		}
		if over {
			l.s.bad(line, string(tok), fmt.Sprintf("a string of over %d bytes, not an ID", maxToken))
			return nil
		}
		id, err := ParseJSONID(tok)
		l.s.add(line, tok, id, err)
	case c == '-' || isDigit(c) || isLetter(c):
		tok, over := l.word()
		if n, ok := fastIntBytes(tok); ok {
			l.s.queue = append(l.s.queue, entry{id: IntID(n)})
			return nil
		}
		switch w := string(tok); {
		case over:
			l.s.bad(line, w, fmt.Sprintf("a token of over %d bytes, not an ID", maxToken))
		case w == "true" || w == "false" || w == "null":
			id, err := ParseJSONID(tok)
			l.s.add(line, tok, id, err)
		case isLetter(c):
			return l.malformed("unexpected %q", clip(w))
		default:
			id, err := ParseID(w)
			l.s.add(line, tok, id, err)
		}
	default:
		return l.malformed("unexpected %s", quoteByte(c))
	}
	return nil
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// word reads a bare token (a number, or what stands where one should).
func (l *lexer) word() (tok []byte, over bool) {
	l.tok = l.tok[:0]
	for {
		c, err := l.r.ReadByte()
		if err != nil {
			return l.tok, over
		}
		switch c {
		case ' ', '\t', '\r', '\n', ',', ']', '[', '{', '}', '"', ':':
			_ = l.r.UnreadByte()
			return l.tok, over
		}
		if len(l.tok) < maxToken {
			l.tok = append(l.tok, c)
		} else {
			over = true
		}
	}
}

// str reads a JSON string, quotes included.
func (l *lexer) str() (tok []byte, over bool, err error) {
	l.tok = l.tok[:0]
	keep := func(c byte) {
		if len(l.tok) < maxToken {
			l.tok = append(l.tok, c)
		} else {
			over = true
		}
	}
	_, _ = l.r.ReadByte() // the opening quote
	keep('"')
	for {
		c, err := l.r.ReadByte()
		if err != nil {
			return nil, false, l.ended(err, "a string")
		}
		switch {
		case c == '"':
			keep(c)
			return l.tok, over, nil
		case c == '\\':
			keep(c)
			if c, err = l.r.ReadByte(); err != nil {
				return nil, false, l.ended(err, "a string")
			}
			if c == '\n' {
				l.line++
			}
			keep(c)
		case c == '\n':
			return nil, false, l.malformed("a line break inside a string")
		default:
			keep(c)
		}
	}
}

// skipComposite skips an array or object, strings included.
func (l *lexer) skipComposite() error {
	depth := 0
	for {
		c, err := l.r.ReadByte()
		if err != nil {
			return l.ended(err, "an object or array")
		}
		switch c {
		case '\n':
			l.line++
		case '[', '{':
			depth++
		case ']', '}':
			if depth--; depth == 0 {
				return nil
			}
		case '"':
			_ = l.r.UnreadByte()
			if _, _, err := l.str(); err != nil {
				return err
			}
		}
	}
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7F {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02X", c)
}

// ParseIDs reads every ID of r with a Scanner (see it for the formats). When
// any entry is invalid it returns an *InvalidIDsError listing them with their
// lines (the first thousand; the rest are counted), and no IDs: a caller must
// then enqueue nothing.
func ParseIDs(r io.Reader, k Kind) ([]ID, error) {
	sc := NewScanner(r, k)
	var (
		ids []ID
		bad InvalidIDsError
	)
	bad.Line = true
	for sc.Scan() {
		if inv, ok := sc.Invalid(); ok {
			bad.Add(inv)
			continue
		}
		ids = append(ids, sc.ID())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read IDs: %w", err)
	}
	if bad.Count() > 0 {
		return nil, &bad
	}
	return ids, nil
}

// InvalidID is one rejected ID.
type InvalidID struct {
	// Index is the ID's position in Request.IDs, or a 1-based line number
	// when the ID came from text (see ParseIDs).
	Index  int    `json:"index"`
	Text   string `json:"text"`
	Reason string `json:"reason"`
}

// InvalidIDsError rejects a request; nothing was enqueued.
type InvalidIDsError struct {
	Invalid []InvalidID
	// More counts invalid IDs beyond those listed.
	More int
	// Line is true when Index values are line numbers.
	Line bool
}

// Add lists inv, or counts it once a thousand are listed.
func (e *InvalidIDsError) Add(inv InvalidID) {
	if len(e.Invalid) < maxReported {
		e.Invalid = append(e.Invalid, inv)
		return
	}
	e.More++
}

// Count is how many invalid IDs there were.
func (e *InvalidIDsError) Count() int { return len(e.Invalid) + e.More }

func (e *InvalidIDsError) Error() string {
	where := "ID #"
	if e.Line {
		where = "line "
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s, nothing enqueued", Plural(e.Count(), "invalid ID", "invalid IDs"))
	for i, v := range e.Invalid {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", e.Count()-5)
			break
		}
		fmt.Fprintf(&b, "; %s%d %q: %s", where, v.Index, v.Text, v.Reason)
	}
	return b.String()
}

// Plural writes n with the singular or plural noun: "1 ID", "2 IDs".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
