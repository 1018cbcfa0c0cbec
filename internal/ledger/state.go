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
	// StatePresumed: an earlier call's lost answer most likely deleted it.
	StatePresumed State = "presumed"
	// StateDead: dead-lettered; see package deadletter.
	StateDead State = "dead"
)

// Gone reports whether the ID needs no further call.
func (s State) Gone() bool { return s == StateDeleted || s == StatePresumed }

// CanBecome reports whether a record in state s may be overwritten with
// next. Deleted is final; presumed may only be confirmed as deleted; dead and
// pending may become anything (a dead ID can be requeued, and a later run
// may delete it).
func (s State) CanBecome(next State) bool {
	switch s {
	case StateDeleted:
		return next == StateDeleted
	case StatePresumed:
		return next == StatePresumed || next == StateDeleted
	}
	return true
}
