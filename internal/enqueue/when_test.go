package enqueue

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckWhen(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"zero: now", time.Time{}, nil},
		{"now", now, nil},
		{"a minute ago", now.Add(-MaxBehind), nil},
		{"just over a minute ago", now.Add(-MaxBehind - time.Second), ErrTooEarly},
		{"yesterday", now.Add(-24 * time.Hour), ErrTooEarly},
		{"in a year", now.Add(MaxAhead), nil},
		{"past a year", now.Add(MaxAhead + time.Second), ErrTooLate},
	} {
		err := CheckWhen(tc.at, now)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	err := CheckWhen(time.Date(2026, 12, 7, 17, 0, 0, 0, time.FixedZone("CST", 8*3600)), now)
	if err == nil || !strings.Contains(err.Error(), "2026-12-07T17:00:00+08:00 is in the past: 1h0m0s before now (2026-12-07T10:00:00Z)") {
		t.Errorf("message: %v", err)
	}
}

func TestCheckDelay(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]error{0: nil, time.Hour: nil, MaxAhead: nil, -time.Second: ErrTooEarly, MaxAhead + 1: ErrTooLate} {
		if err := CheckDelay(d); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("CheckDelay(%s) = %v, want %v", d, err, want)
		}
	}
}
