package tasks

import (
	"slices"
	"strconv"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Action is what the queue does with a batch.
type Action int

// The actions Decide chooses from.
const (
	ActDelete     Action = iota + 1 // the call deleted the batch: record it
	ActRetry                        // hand back to Asynq; uses up a retry
	ActThrottle                     // hand back to Asynq later; uses no retry
	ActBisect                       // split in two and enqueue the halves
	ActDeadLetter                   // dead-letter every ID of the batch
	ActVerify                       // rejected after a lost answer (or V2's unreadable "not found"): wait for a listing
	ActWait                         // waiting for a listing, none newer yet
	ActSettle                       // a listing answered: settle each ID (Decision.Verdict)
	ActHold                         // a listing holds deletions: wait without calling
	ActPause                        // credentials or permission refused: pause the fleet
	ActPaused                       // the fleet is paused: wait without calling
	ActSwitch                       // V1 is gone: switch the fleet to V2 and delete through it
	ActPresume                      // refused alone after a lost answer nothing can settle: presumed deleted
)

func (a Action) String() string {
	switch a {
	case ActDelete:
		return "delete"
	case ActRetry:
		return "retry"
	case ActThrottle:
		return "throttle"
	case ActBisect:
		return "bisect"
	case ActDeadLetter:
		return "dead-letter"
	case ActVerify:
		return "verify"
	case ActWait:
		return "wait"
	case ActSettle:
		return "settle"
	case ActHold:
		return "hold"
	case ActPause:
		return "pause"
	case ActPaused:
		return "paused"
	case ActSwitch:
		return "switch"
	case ActPresume:
		return "presume"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Facts are what the handler knows when it decides, gathered by I/O and
// never changed by Decide.
type Facts struct {
	// N is how many IDs the batch still has to settle.
	N int
	// Call is the batch's call record as this execution found it.
	Call ledger.Call
	// Held: a listing asks the fleet to start no delete call.
	Held bool
	// Paused: the fleet's deletions are paused (and this batch did not get
	// the one call that tests the credentials).
	Paused bool
	// Listed: a listing started after the batch's lost answer exists.
	Listed bool
	// Called: this execution made the delete call, which answered Err
	// (nil: deleted), with its answer Lost (sent, answer never read).
	Called bool
	Err    error
	Lost   bool
	// Retried and MaxRetry are Asynq's counts for this task.
	Retried, MaxRetry int
	// Auto: the fleet may switch to V2 (configured auto, still on V1).
	Auto bool
	// Evident: the batch is one ID that a listing or detail call showed to
	// exist before this call; refused now, something else deleted it.
	Evident bool
	// Again: the batch was sent again because a listing showed its IDs
	// still present after a lost answer.
	Again bool
	// Unsure: the batch descends from a lost answer no listing could
	// settle (Payload.Unsure); Through: a batch of that line went through.
	Unsure, Through bool
	// One: the call was V2's, of one ID (V2 deletes one ID per call);
	// Recheck: that ID is sent once more after a listing showed it absent
	// and the lost call deleted nothing.
	One, Recheck bool
	// Read is what a listing or reads by name taken after the lost answer
	// showed of the batch in doubt (Listed).
	Read Read
}

// Read is what settles a batch in doubt: Presence[i] answers IDs[i];
// Evident holds the IDs known to have existed before the first call (a
// listing or a detail call showed them), Absent those shown not to exist
// by an answer no lost call explains (ledger.Call.Absent); Atomic says the
// lost call was one V1 batchDelete of all of IDs, which Qianfan applies
// whole or not at all (V2 deletes one ID per call).
type Read struct {
	IDs      []modelid.ID
	Presence []inventory.Presence
	Evident  []modelid.ID
	Absent   []modelid.ID
	Atomic   bool
}

// Decision is what Decide chose: the action, and for ActSettle each ID's
// verdict.
type Decision struct {
	Action  Action
	Verdict Verdict
}

// Decide maps facts to a decision. It is the one place where what Qianfan
// answered becomes what the queue does, for a V1 batch, for each of V2's
// calls of one ID, and for each ID of a batch a listing settles; see the
// README's table. It does no I/O.
func Decide(f Facts) Decision {
	if f.Call.State == ledger.CallInDoubt && f.Listed {
		return Decision{Action: ActSettle, Verdict: settle(f.Read)}
	}
	return Decision{Action: decide(f)}
}

func decide(f Facts) Action {
	if f.Call.State == ledger.CallInDoubt {
		return ActWait
	}
	if !f.Called {
		if f.Paused {
			return ActPaused
		}
		return ActHold
	}
	if f.Err == nil {
		return ActDelete
	}
	if f.One {
		return decideOne(f)
	}
	doubt := f.Lost || f.Call.Doubted()
	switch qianfan.Classify(f.Err) {
	case qianfan.ClassThrottled:
		return ActThrottle
	case qianfan.ClassInvalidIDs:
		switch {
		case doubt:
			// The lost call may have deleted these IDs, and then Qianfan
			// rejects them as missing: only a listing can tell.
			return ActVerify
		case f.N > 1:
			return ActBisect
		case f.Evident && !f.Again:
			// It existed before this call: another call (its other ID
			// form, a second request, a person) deleted it meanwhile. A
			// listing taken from now on tells.
			return ActVerify
		case f.Unsure && !f.Through:
			// The lost call may have deleted it, and nothing shows it did
			// not.
			return ActPresume
		}
		return ActDeadLetter
	case qianfan.ClassRequest:
		// Credentials, permission, a request every batch would make: not
		// the IDs' fault, so no batch is dead-lettered for it.
		return ActPause
	case qianfan.ClassGone:
		// The API no longer serves: not the IDs' fault either.
		if f.Auto {
			return ActSwitch
		}
		return ActPause
	}
	// Transient and unknown: retried a bounded number of times.
	if f.Retried < f.MaxRetry {
		return ActRetry
	}
	if doubt {
		return ActVerify // never dead-letter what a lost call may have deleted
	}
	if f.Unsure && !f.Through {
		return ActPresume
	}
	return ActDeadLetter
}

// decideOne decides one V2 call's failure: ActVerify waits for a listing
// (a lost answer, or an unreadable "no"), ActRetry leaves the ID to the
// task's retry. V2 answers each ID alone, so nothing is bisected.
func decideOne(f Facts) Action {
	c := qianfan.Classify(f.Err)
	switch c {
	case qianfan.ClassThrottled:
		return ActThrottle
	case qianfan.ClassRequest, qianfan.ClassGone:
		// Nothing to switch to: V2 refused or gone pauses the fleet.
		return ActPause
	case qianfan.ClassInvalidIDs, qianfan.ClassUnknown:
		// V2's "not found" is not documented: it may mean a lost call
		// deleted the ID, or that it never existed. A listing decides
		// after a loss; after a listing, an ID the lost call may have
		// deleted is presumed deleted, never dead.
		switch {
		case f.Lost:
			return ActVerify
		case f.Unsure:
			return ActPresume
		case c == qianfan.ClassInvalidIDs, f.Recheck:
			return ActDeadLetter
		}
		return ActVerify
	}
	return ActRetry
}

// Verdict is how a listing settles a batch that was rejected after a lost
// answer.
type Verdict struct {
	Deleted  []modelid.ID // absent, and shown to exist before: deleted
	Dead     []modelid.ID // absent, never shown, and the lost call deleted nothing: sent once more alone
	Again    []modelid.ID // present: the lost call deleted nothing, send them again
	Presumed []modelid.ID // existed, but no listing can tell (see inventory.Undecided)
	Resend   []modelid.ID // nothing tells: sent again, their own answers decide
}

// settle decides each ID of a batch rejected after a lost answer from a
// read taken afterwards (see Read).
//
// Absence proves deletion only for an ID shown to exist before: a listing
// may not return every model, and an ID that never existed is absent too.
//
//   - Present: the lost call did not delete it: sent again.
//   - Absent and evident: deleted (by the lost call or meanwhile).
//   - Undecided and evident: presumed deleted (no listing shows that form).
//   - Shown not to exist before: never existed, sent once more alone.
//   - Some ID present (atomic): the lost call deleted nothing, so an absent
//     ID never shown existed never did (sent once more alone, where a
//     refusal dead-letters it) and an undecided one is sent again.
//   - Otherwise nothing tells: the ID is sent again (Resend), and what
//     Qianfan then deletes is deleted.
func settle(r Read) Verdict {
	var v Verdict
	anyPresent := r.Atomic && slices.Contains(r.Presence, inventory.Present)
	for i, id := range r.IDs {
		p, ev := r.Presence[i], slices.Contains(r.Evident, id)
		switch {
		case p == inventory.Present:
			v.Again = append(v.Again, id)
		case p == inventory.Absent && ev:
			v.Deleted = append(v.Deleted, id)
		case p == inventory.Undecided && ev:
			v.Presumed = append(v.Presumed, id)
		case slices.Contains(r.Absent, id), anyPresent && p == inventory.Absent:
			v.Dead = append(v.Dead, id)
		case anyPresent:
			v.Again = append(v.Again, id)
		default:
			v.Resend = append(v.Resend, id)
		}
	}
	return v
}
