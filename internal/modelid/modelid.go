// Package modelid is the vocabulary every part of qfpurge shares: what may be
// deleted (Kind), a model or version ID in Baidu's int or string form (ID),
// and how IDs are read and grouped. It imports nothing of the project.
package modelid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// MaxStringIDLen bounds string IDs; Baidu's look like "am-xxxxxxxxxxxx".
const MaxStringIDLen = 128

// Kind is the resource a deletion targets.
type Kind string

// The kinds qfpurge deletes.
const (
	KindModel   Kind = "model"
	KindVersion Kind = "version"
)

// ParseKind accepts "model" and "version".
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case KindModel, KindVersion:
		return Kind(s), nil
	}
	return "", fmt.Errorf("unknown kind %q: want model or version", s)
}

// IDType says whether an ID is Baidu's numeric or string form. Qianfan
// rejects lists that mix the two, so they are batched apart.
type IDType string

// The two ID types.
const (
	IDInt    IDType = "int"
	IDString IDType = "string"
)

// ID is one model (or model version) ID: a positive int or a non-empty string.
// The zero ID is invalid.
type ID struct {
	n int64
	s string
}

// IntID returns an int ID.
func IntID(n int64) ID { return ID{n: n} }

// StringID returns a string ID.
func StringID(s string) ID { return ID{s: s} }

// Type reports the ID's type.
func (id ID) Type() IDType {
	if id.s != "" {
		return IDString
	}
	return IDInt
}

// Int returns the int form; ok is false for string IDs.
func (id ID) Int() (n int64, ok bool) { return id.n, id.s == "" }

// String returns the ID as text: "585" or "am-xxx".
func (id ID) String() string {
	if id.s != "" {
		return id.s
	}
	return strconv.FormatInt(id.n, 10)
}

// Validate reports why an ID cannot be sent to Qianfan.
func (id ID) Validate() error {
	if id.s == "" {
		if id.n <= 0 {
			return fmt.Errorf("int ID %d must be positive", id.n)
		}
		return nil
	}
	if len(id.s) > MaxStringIDLen {
		return fmt.Errorf("string ID is %d bytes long, over the %d-byte limit", len(id.s), MaxStringIDLen)
	}
	if !utf8.ValidString(id.s) {
		return errors.New("string ID is not valid UTF-8")
	}
	for _, r := range id.s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("string ID %q holds a control or space character", id.s)
		}
	}
	return nil
}

// MarshalJSON writes a number for int IDs and a string for string IDs.
func (id ID) MarshalJSON() ([]byte, error) {
	if id.s != "" {
		return json.Marshal(id.s)
	}
	return strconv.AppendInt(nil, id.n, 10), nil
}

// UnmarshalJSON reads a JSON number as an int ID and a JSON string as a
// string ID, so JSON input keeps its type.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			return errors.New("string ID is empty")
		}
		*id = StringID(s)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("ID %s is neither a whole number nor a string", b)
	}
	*id = IntID(n)
	return nil
}

// ParseID reads one textual ID. A bare whole number is an int ID unless
// asString is set; anything else is a string ID.
func ParseID(s string, asString bool) (ID, error) {
	if s == "" {
		return ID{}, errors.New("empty ID")
	}
	if !asString && looksNumeric(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return ID{}, fmt.Errorf("int ID %s: %w", s, errors.Unwrap(err))
		}
		id := IntID(n)
		return id, id.Validate()
	}
	id := StringID(s)
	return id, id.Validate()
}

func looksNumeric(s string) bool {
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Dedupe returns ids without repeats, keeping first occurrences in order.
func Dedupe(ids []ID) []ID {
	seen := make(map[ID]struct{}, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// SplitByType separates int IDs from string IDs.
func SplitByType(ids []ID) (ints, strs []ID) {
	for _, id := range ids {
		if id.Type() == IDString {
			strs = append(strs, id)
		} else {
			ints = append(ints, id)
		}
	}
	return ints, strs
}

// Chunk cuts ids into slices of at most size.
func Chunk(ids []ID, size int) [][]ID {
	var out [][]ID
	for len(ids) > size {
		out = append(out, ids[:size:size])
		ids = ids[size:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}
