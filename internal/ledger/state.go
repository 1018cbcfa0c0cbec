package ledger

// State is what the ledger knows of one ID.
type State string

// The states. An ID with no record has the zero State.
const (
	// StatePending: enqueued through the HTTP API (or requeued) and not
	// settled yet. Workers never write it.
	StatePending State = "pending"
	// StateDeleted: a call that deleted it answered success.
	StateDeleted State = "deleted"
	// StatePresumed: a call's answer was lost and no listing can tell
	// whether it deleted the ID (an int version ID whose string form no
	// listing has shown); counted apart from verified deletions.
	StatePresumed State = "presumed"
	// StateProtected: a deletion planned by a rule was skipped because a
	// service uses the ID.
	StateProtected State = "protected"
	// StateDead: dead-lettered; see package deadletter.
	StateDead State = "dead"
	// StateCancelled: its request was cancelled before a call carried it.
	StateCancelled State = "cancelled"
	// StateRefused: not sent, because its model's name is outside the name
	// scope of whoever asked (an API token's names), or could not be
	// learned from a listing to be checked. Like dead, it may be enqueued
	// again.
	StateRefused State = "refused"
)

// Gone reports whether the ID needs no further call.
func (s State) Gone() bool { return s == StateDeleted || s == StatePresumed }

// Final reports whether the ID's handling has ended (no batch holds it).
func (s State) Final() bool {
	return s.Gone() || s == StateDead || s == StateProtected || s == StateCancelled || s == StateRefused
}

// CanBecome reports whether a record in state s may be overwritten with
// next. Deleted is final; presumed may only be confirmed as deleted; every
// other state (pending, dead, protected, cancelled, refused) may become
// anything (a dead ID can be requeued, and a later request may delete it).
func (s State) CanBecome(next State) bool {
	switch s {
	case StateDeleted:
		return next == StateDeleted
	case StatePresumed:
		return next == StatePresumed || next == StateDeleted
	}
	return true
}
