package modelid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ParseID reads one ID written as bare text (an argument, a line of a file,
// a URL path): a clean positive decimal number is an int ID, a Qianfan
// string ID (am-…, amv-…) a string ID, and anything else an error that says
// what is wrong with it.
func ParseID(s string) (ID, error) {
	if s == "" {
		return ID{}, errors.New("empty ID")
	}
	if n, ok := fastInt(s); ok {
		return IntID(n), nil
	}
	if allDigits(s) {
		return parseInt(s)
	}
	if err := checkText(s); err != nil {
		return ID{}, err
	}
	if hasQianfanPrefix(s) {
		if err := checkString(s); err != nil {
			return ID{}, err
		}
		return StringID(s), nil
	}
	return ID{}, notAnID(s)
}

// ParseString reads an ID explicitly written as a string (a JSON or quoted
// YAML string): it must be a Qianfan string ID. A quoted number is refused
// rather than guessed at.
func ParseString(s string) (ID, error) {
	if s == "" {
		return ID{}, errors.New("empty string ID")
	}
	if err := checkText(s); err != nil {
		return ID{}, err
	}
	if allDigits(s) {
		return ID{}, fmt.Errorf("a quoted number is not an ID: write %s without quotes for the int ID (Qianfan's string IDs start with am- or amv-)", clip(s))
	}
	return ParseID(s)
}

// ParseJSONID reads one JSON value: a number is an int ID (see ParseID), a
// string a string ID (see ParseString); anything else is refused.
func ParseJSONID(raw []byte) (ID, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ID{}, errors.New("empty JSON value")
	}
	switch c := raw[0]; {
	case c == '"':
		if !utf8.Valid(raw) {
			return ID{}, errors.New("not valid UTF-8")
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return ID{}, fmt.Errorf("malformed JSON string: %v", err)
		}
		return ParseString(s)
	case c == '-' || isDigit(c):
		return ParseID(string(raw))
	}
	return ID{}, fmt.Errorf("not an ID: %s (want a whole number or a string)", jsonType(raw))
}

func jsonType(raw []byte) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return strconv.Quote(clip(string(raw)))
}

// fastInt parses the common case, a clean positive decimal, without
// allocating.
func fastInt(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 || s[0] == '0' {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func parseInt(s string) (ID, error) {
	if s == "0" {
		return ID{}, errors.New("0 is not an ID: int IDs are positive")
	}
	if s[0] == '0' {
		return ID{}, fmt.Errorf("leading zero: write %s", strings.TrimLeft(s, "0"))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return ID{}, fmt.Errorf("number too large for an int ID (at most %d)", int64(1<<63-1))
	}
	return IntID(n), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func hasQianfanPrefix(s string) bool {
	return strings.HasPrefix(s, ModelPrefix) || strings.HasPrefix(s, VersionPrefix)
}

// checkText refuses what can never be part of an ID: invalid UTF-8,
// control, invisible (format) and space characters, and over-long text.
func checkText(s string) error {
	if len(s) > MaxStringIDLen {
		return fmt.Errorf("%d bytes long, over the %d-byte limit of an ID", len(s), MaxStringIDLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if what := badRune(r); what != "" {
			return fmt.Errorf("holds %s (%U)", what, r)
		}
	}
	return nil
}

// badRune names a character no ID may hold, or returns "".
func badRune(r rune) string {
	switch r {
	case '\uFEFF':
		return "a byte-order mark"
	case '\u200B':
		return "a zero-width space"
	case '\u200C', '\u200D':
		return "a zero-width joiner"
	case '\u2060':
		return "a word joiner"
	case '\u00AD':
		return "a soft hyphen"
	case '\u00A0', '\u202F':
		return "a no-break space"
	case '\u200E', '\u200F', '\u061C':
		return "a bidirectional mark"
	case '\u202A', '\u202B', '\u202C', '\u202D', '\u202E', '\u2066', '\u2067', '\u2068', '\u2069':
		return "a bidirectional control"
	case '\uFFFD':
		return "a replacement character (the text was not UTF-8)"
	}
	switch {
	case unicode.Is(unicode.Cf, r):
		return "an invisible format character"
	case unicode.IsControl(r):
		return "a control character"
	case unicode.IsSpace(r), unicode.Is(unicode.Zs, r):
		return "a space"
	}
	return ""
}

// checkString is the whole rule for a string ID.
func checkString(s string) error {
	if s == "" {
		return errors.New("empty string ID")
	}
	if err := checkText(s); err != nil {
		return err
	}
	if allDigits(s) {
		return fmt.Errorf("string ID %q is a number: Qianfan's string IDs start with am- or amv-; send it as an int ID", s)
	}
	tail, ok := strings.CutPrefix(s, VersionPrefix)
	if !ok {
		if tail, ok = strings.CutPrefix(s, ModelPrefix); !ok {
			return notAnID(s)
		}
	}
	if tail == "" {
		return fmt.Errorf("%q has nothing after its prefix", s)
	}
	for _, r := range tail {
		if !(r < utf8.RuneSelf && (r == '-' || r == '_' || isDigit(byte(r)) || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z'))) {
			return fmt.Errorf("string ID holds %q: Qianfan's string IDs are am- or amv- followed by letters, digits, '-' or '_'", r)
		}
	}
	return nil
}

// notAnID explains why s is neither an int nor a string ID, with a hint
// for the usual suspects.
func notAnID(s string) error {
	const want = "want a whole number (585) or a Qianfan string ID (am-…, amv-…)"
	trimmed := strings.TrimRight(s, ",;")
	switch {
	case strings.HasPrefix(s, "-") && allDigits(s[1:]):
		return errors.New("int IDs are positive")
	case strings.HasPrefix(s, "+") && allDigits(s[1:]):
		return fmt.Errorf("write the number without '+': %s", s[1:])
	case strings.HasPrefix(s, "-"):
		return fmt.Errorf("starts with '-' (a misplaced flag?): %s", want)
	case trimmed != s && allDigits(trimmed):
		return fmt.Errorf("stray %q after the number (pasted from a CSV or a JSON list?): put one ID per line, or write a JSON array", s[len(trimmed):])
	case isFraction(s):
		return errors.New("not a whole number")
	case hasQianfanPrefix(strings.ToLower(s)):
		return errors.New("Qianfan's string IDs start with lower-case am- or amv-")
	}
	return errors.New("not an ID: " + want)
}

// isFraction reports a decimal number with a fraction or exponent (1.5,
// 585.0, 1e3, -2.5E-3).
func isFraction(s string) bool {
	s = strings.TrimLeft(s, "+-")
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	if hasExp {
		exp = strings.TrimLeft(exp, "+-")
		if !allDigits(exp) {
			return false
		}
	}
	whole, frac, hasDot := strings.Cut(mant, ".")
	if !hasDot && !hasExp {
		return false
	}
	return (whole == "" || allDigits(whole)) && (frac == "" || allDigits(frac)) && whole+frac != ""
}

// clip shortens text for messages, at a rune boundary.
func clip(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
