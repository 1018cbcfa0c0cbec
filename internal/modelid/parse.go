package modelid

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLine bounds one input line; no valid ID comes near it.
const maxLine = 1 << 20

// ParseIDs reads IDs from text: one per line (blank lines and lines starting
// with # are skipped), or JSON: arrays, strings and numbers, one per line
// (JSON lines) or as one array spanning lines. JSON keeps the type: 585 is an
// int ID and "585" a string ID. A bare number is an int ID unless asString.
//
// Every invalid ID is reported with its line in an *InvalidIDsError; a caller
// must then enqueue nothing.
func ParseIDs(r io.Reader, asString bool) ([]ID, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := firstByte(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	if first == '[' {
		return parseJSONStream(br)
	}
	return parseLines(br, asString)
}

func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return 0, err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = br.ReadByte()
			continue
		}
		return b[0], nil
	}
}

func parseLines(r io.Reader, asString bool) ([]ID, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var (
		ids []ID
		bad []InvalidID
	)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var got []ID
		var err error
		if text[0] == '"' || text[0] == '[' {
			got, err = decodeJSONValue([]byte(text))
		} else {
			var id ID
			id, err = ParseID(text, asString)
			got = []ID{id}
		}
		if err != nil {
			bad = append(bad, InvalidID{Index: line, Text: clip(text), Reason: err.Error()})
			continue
		}
		ids = append(ids, got...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read IDs: %w", err)
	}
	if len(bad) > 0 {
		return nil, &InvalidIDsError{Invalid: bad, Line: true}
	}
	return ids, nil
}

// parseJSONStream reads a sequence of JSON values (arrays, numbers, strings).
func parseJSONStream(r io.Reader) ([]ID, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read IDs: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var (
		ids []ID
		bad []InvalidID
	)
	for {
		start := dec.InputOffset()
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			off := start
			var se *json.SyntaxError
			if errors.As(err, &se) {
				off = se.Offset
			}
			bad = append(bad, InvalidID{Index: lineAt(data, off), Text: "", Reason: "malformed JSON: " + err.Error()})
			break
		}
		got, errs := decodeJSONIDs(raw)
		ids = append(ids, got...)
		for _, e := range errs {
			bad = append(bad, InvalidID{Index: lineAt(data, start+e.off), Text: e.text, Reason: e.reason})
		}
	}
	if len(bad) > 0 {
		return nil, &InvalidIDsError{Invalid: bad, Line: true}
	}
	return ids, nil
}

type elemErr struct {
	off          int64
	text, reason string
}

// decodeJSONIDs decodes one JSON value into IDs, reporting each bad element.
func decodeJSONIDs(raw json.RawMessage) ([]ID, []elemErr) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] != '[' {
		id, err := oneJSONID(raw)
		if err != nil {
			return nil, []elemErr{{0, clip(string(raw)), err.Error()}}
		}
		return []ID{id}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '['
		return nil, []elemErr{{0, "", err.Error()}}
	}
	var (
		ids  []ID
		errs []elemErr
	)
	for dec.More() {
		var el json.RawMessage
		if err := dec.Decode(&el); err != nil {
			return ids, append(errs, elemErr{dec.InputOffset(), "", "malformed JSON: " + err.Error()})
		}
		off := dec.InputOffset() - int64(len(el))
		id, err := oneJSONID(el)
		if err != nil {
			errs = append(errs, elemErr{off, clip(string(el)), err.Error()})
			continue
		}
		ids = append(ids, id)
	}
	return ids, errs
}

func oneJSONID(raw json.RawMessage) (ID, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '"' && raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return ID{}, errors.New("not an ID: want a whole number or a string")
	}
	var id ID
	if err := json.Unmarshal(raw, &id); err != nil {
		return ID{}, err
	}
	return id, id.Validate()
}

func decodeJSONValue(b []byte) ([]ID, error) {
	ids, errs := decodeJSONIDs(b)
	if len(errs) > 0 {
		e := errs[0]
		if e.text != "" {
			return nil, fmt.Errorf("%s: %s", e.text, e.reason)
		}
		return nil, errors.New(e.reason)
	}
	return ids, nil
}

func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
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
	// Line is true when Index values are line numbers.
	Line bool
}

func (e *InvalidIDsError) Error() string {
	where := "ID #"
	if e.Line {
		where = "line "
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d invalid ID(s), nothing enqueued", len(e.Invalid))
	for i, v := range e.Invalid {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Invalid)-5)
			break
		}
		fmt.Fprintf(&b, "; %s%d %q: %s", where, v.Index, v.Text, v.Reason)
	}
	return b.String()
}
