// Package modelid is the vocabulary every part of qfpurge shares: what may be
// deleted (Kind), a model or version ID in Baidu's int or string form (ID),
// and the one parser every input path uses (arguments, files, JSON, the HTTP
// API, schedule files). It imports nothing of the project.
//
// The rule, everywhere:
//
//   - an int ID is a clean positive decimal number: 585 (no sign, no leading
//     zero, no fraction, no exponent, at most 2^63-1);
//   - a string ID has Qianfan's form: "am-…" for a model, "amv-…" for a model
//     version, followed by ASCII letters, digits, '-' or '_' (at most 128
//     bytes);
//   - anything else is refused with a reason, never read as something close
//     to it: "585," "1.5", "\ufeff585", "--kind" and a quoted "585" are all
//     errors, not string IDs;
//   - an amv- ID sent as kind model, or an am- ID sent as kind version, is
//     refused (CheckKind).
package modelid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxStringIDLen bounds string IDs; Baidu's look like "am-xxxxxxxxxxxx".
const MaxStringIDLen = 128

// The prefixes of Qianfan's string IDs.
const (
	ModelPrefix   = "am-"
	VersionPrefix = "amv-"
)

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

// ID is one model (or model version) ID: a positive int or a string. The
// zero ID is invalid. IntID and StringID build IDs without judging them;
// Validate and CheckKind say whether one may be sent.
type ID struct {
	n int64
	s string
}

// IntID returns an int ID.
func IntID(n int64) ID { return ID{n: n} }

// StringID returns a string ID.
func StringID(s string) ID { return ID{s: s} }

// Stored rebuilds an ID that qfpurge recorded earlier (a dead letter, a
// ledger entry) from its text and type, without judging it: what was
// recorded is shown as it was. An empty type is told from the text.
func Stored(text string, t IDType) (ID, error) {
	if t == "" && strings.Trim(text, "+-0123456789") != "" {
		t = IDString
	}
	if t == IDString {
		return StringID(text), nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return ID{}, fmt.Errorf("stored int ID %q: %w", text, errors.Unwrap(err))
	}
	return IntID(n), nil
}

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

// Validate reports why an ID cannot be sent to Qianfan: an int that is not
// positive, or a string that is not of Qianfan's form (see the package doc).
func (id ID) Validate() error {
	if id.s == "" {
		if id.n <= 0 {
			return fmt.Errorf("int ID %d must be positive", id.n)
		}
		return nil
	}
	return checkString(id.s)
}

// ErrWrongKind is wrapped by CheckKind's errors.
var ErrWrongKind = errors.New("ID of the other kind")

// CheckKind refuses a string ID whose prefix names the other kind: amv- IDs
// are model versions, am- IDs models. Int IDs carry no kind.
func (id ID) CheckKind(k Kind) error {
	switch {
	case id.s == "":
	case k == KindModel && strings.HasPrefix(id.s, VersionPrefix):
		return fmt.Errorf("%w: an amv- ID names a model version, not a model: send it with kind version", ErrWrongKind)
	case k == KindVersion && strings.HasPrefix(id.s, ModelPrefix):
		return fmt.Errorf("%w: an am- ID names a model, not a model version: send it with kind model", ErrWrongKind)
	}
	return nil
}

// ValidateFor is Validate and then CheckKind.
func (id ID) ValidateFor(k Kind) error {
	if err := id.Validate(); err != nil {
		return err
	}
	return id.CheckKind(k)
}

// MarshalJSON writes a number for int IDs and a string for string IDs.
func (id ID) MarshalJSON() ([]byte, error) {
	if id.s != "" {
		return json.Marshal(id.s)
	}
	return strconv.AppendInt(nil, id.n, 10), nil
}

// UnmarshalJSON reads a JSON number as an int ID and a JSON string as a
// string ID, so what qfpurge wrote (task payloads, receipts, dead letters)
// reads back with its type. It refuses what cannot be an ID of either type
// (1.5, "", invisible or control characters); whether the ID may be sent is
// Validate's call. Input from people and other systems goes through
// ParseJSONID, which applies the whole rule.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			return errors.New("empty string ID")
		}
		if err := checkText(s); err != nil {
			return err
		}
		*id = StringID(s)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("ID %s is neither a whole number nor a string", clip(string(b)))
	}
	*id = IntID(n)
	return nil
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
