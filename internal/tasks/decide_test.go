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
	covered := map[Action]bool{} // ActSettle: TestSettle
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
		// One ID shown to exist right before its call, refused: deleted
		// meanwhile (e.g. under its other ID form), so a listing decides.
		{"param invalid on one ID shown to exist waits for a listing", with(called(invalid), func(f *Facts) { f.N = 1; f.Evident = true }), ActVerify},
		{"param invalid on one ID sent again after a listing dead-letters", with(called(invalid), func(f *Facts) { f.N = 1; f.Evident = true; f.Again = true }), ActDeadLetter},
		// Resent after a lost answer no listing settled.
		{"unsure single refused, nothing of its line went through: presumed", with(called(invalid), func(f *Facts) { f.N = 1; f.Unsure = true }), ActPresume},
		{"unsure single refused, its line went through: dead", with(called(invalid), func(f *Facts) { f.N = 1; f.Unsure = true; f.Through = true }), ActDeadLetter},
		{"unsure batch refused is bisected", with(called(invalid), func(f *Facts) { f.Unsure = true }), ActBisect},
		{"unsure retries used up: presumed", with(called(&qianfan.Error{HTTPStatus: 503}), func(f *Facts) { f.Retried = 3; f.Unsure = true }), ActPresume},
		// A refused credential on a read as on a delete.
		{"a detail read refused for credentials pauses the fleet", with(called(&qianfan.Error{HTTPStatus: 403, GatewayCode: "AccessDenied"}), func(f *Facts) { f.N = 1 }), ActPause},
		{"in doubt, no listing yet", Facts{N: 5, Call: doubt}, ActWait},
		{"in doubt, a listing answers", Facts{N: 5, Call: doubt, Listed: true}, ActSettle},
		{"held by a listing", Facts{N: 5, Held: true}, ActHold},
		{"the fleet is paused", Facts{N: 5, Paused: true}, ActPaused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.f).Action; got != tt.want {
				t.Errorf("Decide(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
		covered[tt.want] = true
	}
	for a := ActDelete; a <= ActPresume; a++ {
		if a != ActSettle && !covered[a] {
			t.Errorf("no row of the table decides %v", a)
		}
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
		absent   []modelid.ID
	}{
		{"some present: the lost call deleted nothing", ids(1, 2, 3, 4), []inventory.Presence{P, A, P, U}, nil, false,
			Verdict{Again: ids(1, 3, 4), Dead: ids(2)}, nil},
		{"some present, an absent one shown before: deleted meanwhile", ids(1, 2, 3), []inventory.Presence{P, A, A}, ids(2), false,
			Verdict{Again: ids(1), Deleted: ids(2), Dead: ids(3)}, nil},
		// Absence proves deletion only for what was shown to exist: a
		// listing may not return every model.
		{"none present, none shown before: sent again", ids(1, 2, 3), []inventory.Presence{A, A, A}, nil, false,
			Verdict{Resend: ids(1, 2, 3)}, nil},
		{"none present, all shown before: deleted", ids(1, 2, 3), []inventory.Presence{A, A, A}, ids(1, 2, 3), false,
			Verdict{Deleted: ids(1, 2, 3)}, nil},
		{"big batch with an undecidable form", ids(1, 2, 3), []inventory.Presence{A, U, A}, ids(1, 2, 3), false,
			Verdict{Deleted: ids(1, 3), Presumed: ids(2)}, nil},
		{"one ID that existed before", ids(7), []inventory.Presence{A}, ids(7), false, Verdict{Deleted: ids(7)}, nil},
		{"one ID nothing showed: sent again", ids(7), []inventory.Presence{A}, nil, false, Verdict{Resend: ids(7)}, nil},
		{"one ID still there", ids(7), []inventory.Presence{P}, nil, false, Verdict{Again: ids(7)}, nil},
		{"two IDs, one evident", ids(7, 8), []inventory.Presence{A, A}, ids(8), false, Verdict{Resend: ids(7), Deleted: ids(8)}, nil},
		{"undecidable single that existed", ids(7), []inventory.Presence{U}, ids(7), false, Verdict{Presumed: ids(7)}, nil},
		{"undecidable single nothing showed: sent again", ids(7), []inventory.Presence{U}, nil, false, Verdict{Resend: ids(7)}, nil},
		{"one ID a detail call showed missing before: rechecked", ids(7), []inventory.Presence{A}, nil, false,
			Verdict{Dead: ids(7)}, ids(7)},
		{"V2: not found with nothing lost, absent: rechecked", ids(7), []inventory.Presence{A}, nil, true,
			Verdict{Dead: ids(7)}, ids(7)},
		{"V2: each ID alone, no inference", ids(1, 2, 3, 4, 5), []inventory.Presence{P, A, A, U, A}, ids(2, 4), true,
			Verdict{Again: ids(1), Deleted: ids(2), Resend: ids(3, 5), Presumed: ids(4)}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := Facts{N: len(tt.ids), Call: ledger.Call{State: ledger.CallInDoubt, Lost: time.Unix(100, 0)}, Listed: true,
				Read: Read{IDs: tt.ids, Presence: tt.presence, Evident: tt.evident, Absent: tt.absent, Atomic: !tt.v2}}
			got := Decide(f)
			if got.Action != ActSettle {
				t.Fatalf("Decide = %v, want %v", got.Action, ActSettle)
			}
			if diff := cmp.Diff(tt.want, got.Verdict, cmp.AllowUnexported(modelid.ID{})); diff != "" {
				t.Errorf("Decide's verdict (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecideOneV2Call: V2 deletes one ID per call, and Decide decides
// each call's answer (Facts.One).
func TestDecideOneV2Call(t *testing.T) {
	notFound := &qianfan.Error{HTTPStatus: 404, ErrorCode: "NoSuchKey"}
	for _, tt := range []struct {
		name                  string
		err                   error
		lost, recheck, unsure bool
		want                  Action
	}{
		{"deleted", nil, false, false, false, ActDelete},
		{"deleted after a lost answer", nil, true, false, false, ActDelete},
		{"invalid parameter", &qianfan.Error{HTTPStatus: 400, ErrorCode: "InvalidParameter"}, false, false, false, ActDeadLetter},
		{"invalid parameter after a lost answer", &qianfan.Error{HTTPStatus: 400, ErrorCode: "InvalidParameter"}, true, false, false, ActVerify},
		{"not found: a listing decides", notFound, false, false, false, ActVerify},
		{"not found on a recheck: dead", notFound, false, true, false, ActDeadLetter},
		{"not found on a recheck after a lost answer", notFound, true, true, false, ActVerify},
		// A lost answer a listing could not settle: never dead.
		{"not found when resent after a lost answer: presumed", notFound, false, false, true, ActPresume},
		{"not found when resent, its own answer lost again", notFound, true, false, true, ActVerify},
		{"throttled", &qianfan.Error{HTTPStatus: 429, ErrorCode: "RequestLimitExceeded"}, false, false, false, ActThrottle},
		{"access denied pauses", &qianfan.Error{HTTPStatus: 403, ErrorCode: "AccessDenied"}, false, false, false, ActPause},
		{"V2 gone too pauses", &qianfan.Error{HTTPStatus: 404}, false, false, false, ActPause},
		{"transient", &qianfan.Error{HTTPStatus: 500, ErrorCode: "InternalError"}, false, false, false, ActRetry},
		// Its retries are the task's: a V2 call never dead-letters for them.
		{"transient, retries used up", &qianfan.Error{HTTPStatus: 500, ErrorCode: "InternalError"}, false, false, false, ActRetry},
	} {
		f := Facts{N: 1, Called: true, Err: tt.err, Lost: tt.lost, One: true, Recheck: tt.recheck, Unsure: tt.unsure, MaxRetry: 3}
		if tt.name == "transient, retries used up" {
			f.Retried = 3
		}
		if got := Decide(f).Action; got != tt.want {
			t.Errorf("%s: Decide = %v, want %v", tt.name, got, tt.want)
		}
	}
}
