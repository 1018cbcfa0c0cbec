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
	ActVerify                       // rejected after a lost answer: wait for a listing
	ActWait                         // waiting for a listing, none newer yet
	ActSettle                       // a listing answered: settle each ID
	ActHold                         // a listing holds deletions: wait without calling
	ActPause                        // credentials or permission refused: pause the fleet
	ActPaused                       // the fleet is paused: wait without calling
	ActSwitch                       // V1 is gone: switch the fleet to V2 and delete through it
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
}

// Decide maps facts to an action. It is the one place where what Qianfan
// answered becomes what the queue does; see the README's table.
func Decide(f Facts) Action {
	if f.Call.State == ledger.CallInDoubt {
		if f.Listed {
			return ActSettle
		}
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
	return ActDeadLetter
}

// Verdict is how a listing settles a batch that was rejected after a lost
// answer.
type Verdict struct {
	Deleted  []modelid.ID // absent, and the lost call deleted them
	Dead     []modelid.ID // absent, and nothing shows they ever existed
	Again    []modelid.ID // present: the lost call deleted nothing, send them again
	Presumed []modelid.ID // no listing can tell (see inventory.Undecided)
}

// inferMin is the smallest batch whose IDs, all absent after a lost answer,
// are taken as deleted by that call without each one's own evidence:
// Qianfan rejects a list holding a missing ID as a whole, so the only other
// explanation is that every one of them never existed.
const inferMin = 3

// Settle decides each ID of a batch rejected after a lost answer from a
// listing taken afterwards: presence[i] answers ids[i], and evident holds
// IDs known to have existed before the first call. atomic says the lost
// call was one V1 batchDelete of all of ids, which Qianfan applies whole or
// not at all; V2 deletes one ID per call.
//
//   - Some ID present (atomic): the lost call deleted nothing, so present
//     and undecided IDs are sent again and absent ones were missing all
//     along: dead.
//   - None present, inferMin IDs or more (atomic): the lost call deleted
//     them.
//   - Otherwise each ID alone: present is sent again; absent is deleted if
//     it existed before the call, dead otherwise; undecided is presumed
//     deleted if it existed, dead otherwise.
func Settle(ids []modelid.ID, presence []inventory.Presence, evident []modelid.ID, atomic bool) Verdict {
	var v Verdict
	anyPresent := atomic && slices.Contains(presence, inventory.Present)
	for i, id := range ids {
		p, ev := presence[i], slices.Contains(evident, id)
		switch {
		case anyPresent && p == inventory.Absent:
			v.Dead = append(v.Dead, id)
		case anyPresent, p == inventory.Present:
			v.Again = append(v.Again, id)
		case p == inventory.Absent && ((atomic && len(ids) >= inferMin) || ev):
			v.Deleted = append(v.Deleted, id)
		case p == inventory.Undecided && ((atomic && len(ids) >= inferMin) || ev):
			v.Presumed = append(v.Presumed, id)
		default:
			v.Dead = append(v.Dead, id)
		}
	}
	return v
}
