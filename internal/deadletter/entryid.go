package deadletter

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrBadEntryID is wrapped by errors about malformed stream entry IDs.
var ErrBadEntryID = errors.New("bad dead-letter entry ID")

// ParseEntryID checks a Redis stream entry ID ("1732680000000-0").
func ParseEntryID(s string) (ms, seq uint64, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		ms, err = strconv.ParseUint(a, 10, 64)
		if err == nil {
			seq, err = strconv.ParseUint(b, 10, 64)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("%w %q: want <milliseconds>-<sequence>", ErrBadEntryID, s)
	}
	return ms, seq, nil
}

// predecessor returns the largest entry ID below s.
func predecessor(s string) (string, error) {
	ms, seq, err := ParseEntryID(s)
	if err != nil {
		return "", err
	}
	switch {
	case seq > 0:
		return fmt.Sprintf("%d-%d", ms, seq-1), nil
	case ms > 0:
		return fmt.Sprintf("%d-%d", ms-1, uint64(math.MaxUint64)), nil
	}
	return "", fmt.Errorf("%w %q: 0-0 is never an entry", ErrBadEntryID, s)
}
