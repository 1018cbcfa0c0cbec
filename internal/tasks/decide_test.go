package tasks

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

func TestDecide(t *testing.T) {
	invalid := &qianfan.Error{Code: 500001, Message: "param invalid"}
	lostBefore := ledger.Call{State: ledger.CallAnswered, Lost: time.Unix(100, 0)}
	doubt := ledger.Call{State: ledger.CallInDoubt, Lost: time.Unix(100, 0)}
	called := func(err error) Facts { return Facts{N: 5, Called: true, Err: err, MaxRetry: 3} }
	with := func(f Facts, mod func(*Facts)) Facts { mod(&f); return f }
	for _, tt := range []struct {
		name string
		f    Facts
		want Action
	}{
		{"success", called(nil), ActDelete},
		{"success after a lost answer", with(called(nil), func(f *Facts) { f.Call = lostBefore }), ActDelete},
		{"503 is retried", called(&qianfan.Error{HTTPStatus: 503}), ActRetry},
		{"336100 high load is retried", called(&qianfan.Error{Code: 336100}), ActRetry},
		{"connection reset is retried", called(&qianfan.Error{Err: errors.New("connection reset by peer")}), ActRetry},
		{"context cancelled is retried", called(context.Canceled), ActRetry},
		{"unknown code is retried", called(&qianfan.Error{Code: 987654}), ActRetry},
		{"qps limit throttles", called(&qianfan.Error{Code: 18}), ActThrottle},
		{"rpm limit throttles", called(&qianfan.Error{Code: 336501}), ActThrottle},
		{"429 throttles", called(&qianfan.Error{HTTPStatus: 429}), ActThrottle},
		{"param invalid on many IDs bisects", called(invalid), ActBisect},
		{"param invalid on one ID dead-letters", with(called(invalid), func(f *Facts) { f.N = 1 }), ActDeadLetter},
		{"param invalid after an earlier lost answer waits for a listing", with(called(invalid), func(f *Facts) { f.Call = lostBefore }), ActVerify},
		{"param invalid with its own answer lost waits for a listing", with(called(invalid), func(f *Facts) { f.Lost = true; f.N = 1 }), ActVerify},
		{"bad credentials pause the fleet", called(&qianfan.Error{HTTPStatus: 401, GatewayCode: "SignatureDoesNotMatch"}), ActPause},
		{"no permission pauses the fleet", called(&qianfan.Error{Code: 6}), ActPause},
		{"V2 access denied pauses the fleet", called(&qianfan.Error{HTTPStatus: 403, ErrorCode: "AccessDenied"}), ActPause},
		{"retries used up dead-letter", with(called(&qianfan.Error{HTTPStatus: 503}), func(f *Facts) { f.Retried = 3 }), ActDeadLetter},
		{"V1 gone in auto mode switches to V2", with(called(&qianfan.Error{Code: 3}), func(f *Facts) { f.Auto = true }), ActSwitch},
		{"V1 gone in v1 mode pauses", called(&qianfan.Error{HTTPStatus: 404}), ActPause},
		{"retries used up after a lost answer wait for a listing", with(called(&qianfan.Error{HTTPStatus: 503}), func(f *Facts) { f.Retried = 3; f.Lost = true }), ActVerify},
		{"in doubt, no listing yet", Facts{N: 5, Call: doubt}, ActWait},
		{"in doubt, a listing answers", Facts{N: 5, Call: doubt, Listed: true}, ActSettle},
		{"held by a listing", Facts{N: 5, Held: true}, ActHold},
		{"the fleet is paused", Facts{N: 5, Paused: true}, ActPaused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.f); got != tt.want {
				t.Errorf("Decide(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	var (
		P, A, U = inventory.Present, inventory.Absent, inventory.Undecided
		i       = modelid.IntID
	)
	ids := func(ns ...int64) []modelid.ID {
		out := []modelid.ID{}
		for _, n := range ns {
			out = append(out, i(n))
		}
		return out
	}
	for _, tt := range []struct {
		name     string
		ids      []modelid.ID
		presence []inventory.Presence
		evident  []modelid.ID
		v2       bool
		want     Verdict
	}{
		{"some present: the lost call deleted nothing", ids(1, 2, 3, 4), []inventory.Presence{P, A, P, U}, nil, false,
			Verdict{Again: ids(1, 3, 4), Dead: ids(2)}},
		{"none present in a big batch: the lost call deleted them", ids(1, 2, 3), []inventory.Presence{A, A, A}, nil, false,
			Verdict{Deleted: ids(1, 2, 3)}},
		{"big batch with an undecidable form", ids(1, 2, 3), []inventory.Presence{A, U, A}, nil, false,
			Verdict{Deleted: ids(1, 3), Presumed: ids(2)}},
		{"one ID that existed before", ids(7), []inventory.Presence{A}, ids(7), false, Verdict{Deleted: ids(7)}},
		{"one ID nothing showed", ids(7), []inventory.Presence{A}, nil, false, Verdict{Dead: ids(7)}},
		{"one ID still there", ids(7), []inventory.Presence{P}, nil, false, Verdict{Again: ids(7)}},
		{"two IDs, one evident", ids(7, 8), []inventory.Presence{A, A}, ids(8), false, Verdict{Dead: ids(7), Deleted: ids(8)}},
		{"undecidable single that existed", ids(7), []inventory.Presence{U}, ids(7), false, Verdict{Presumed: ids(7)}},
		{"undecidable single nothing showed", ids(7), []inventory.Presence{U}, nil, false, Verdict{Dead: ids(7)}},
		{"V2: each ID alone, no inference", ids(1, 2, 3, 4), []inventory.Presence{P, A, A, U}, ids(2, 4), true,
			Verdict{Again: ids(1), Deleted: ids(2), Dead: ids(3), Presumed: ids(4)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Settle(tt.ids, tt.presence, tt.evident, !tt.v2)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(modelid.ID{})); diff != "" {
				t.Errorf("Settle (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideOne(t *testing.T) {
	notFound := &qianfan.Error{HTTPStatus: 404, ErrorCode: "NoSuchKey"}
	for _, tt := range []struct {
		name          string
		err           error
		lost, recheck bool
		want          OneAction
	}{
		{"deleted", nil, false, false, OneDeleted},
		{"deleted after a lost answer", nil, true, false, OneDeleted},
		{"invalid parameter", &qianfan.Error{HTTPStatus: 400, ErrorCode: "InvalidParameter"}, false, false, OneDead},
		{"invalid parameter after a lost answer", &qianfan.Error{HTTPStatus: 400, ErrorCode: "InvalidParameter"}, true, false, OneDoubt},
		{"not found: a listing decides", notFound, false, false, OneDoubt},
		{"not found on a recheck: dead", notFound, false, true, OneDead},
		{"not found on a recheck after a lost answer", notFound, true, true, OneDoubt},
		{"throttled", &qianfan.Error{HTTPStatus: 429, ErrorCode: "RequestLimitExceeded"}, false, false, OneThrottle},
		{"access denied pauses", &qianfan.Error{HTTPStatus: 403, ErrorCode: "AccessDenied"}, false, false, OnePause},
		{"V2 gone too pauses", &qianfan.Error{HTTPStatus: 404}, false, false, OnePause},
		{"transient", &qianfan.Error{HTTPStatus: 500, ErrorCode: "InternalError"}, false, false, OneRetry},
	} {
		if got := DecideOne(tt.err, tt.lost, tt.recheck); got != tt.want {
			t.Errorf("%s: DecideOne = %v, want %v", tt.name, got, tt.want)
		}
	}
}
