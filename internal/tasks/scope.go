package tasks

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// scope takes out of the batch, before any call, the IDs whose request
// bounds the names it may delete (an API token's names: Payload.NamesOf)
// and whose model's name (a version's: its model's) is outside those globs
// or cannot be learned: they end refused, naming why, and are never sent.
// The rest of the batch goes on.
//
// Names come from the account's listings (inventory.Store.Names). When
// an ID's name is not known yet, the batch asks for a listing and waits
// for it without spending a retry, as the in-use check does for an int ID
// it cannot place (placeUnknown, whose ask it shares). Once a listing
// taken after the ask is saved, an ID it still does not name is refused:
// nothing is deleted on doubt.
func (h *Handler) scope(ctx context.Context, b *batch) error {
	var scoped []modelid.ID
	for _, id := range b.ids {
		if len(b.p.NamesOf(id)) > 0 {
			scoped = append(scoped, id)
		}
	}
	if len(scoped) == 0 {
		return nil
	}
	names, err := h.inv.Names(ctx, b.p.Kind, scoped)
	if err != nil {
		return err
	}
	var unnamed []modelid.ID
	for _, id := range scoped {
		if _, ok := names[id]; !ok {
			unnamed = append(unnamed, id)
		}
	}
	if len(unnamed) > 0 {
		if err := h.awaitNames(ctx, b, unnamed); err != nil {
			return err
		}
		more, err := h.inv.Names(ctx, b.p.Kind, unnamed)
		if err != nil {
			return err
		}
		for id, n := range more {
			names[id] = n
		}
	}
	var outs []ledger.Outcome
	refused := map[modelid.ID]bool{}
	for _, id := range scoped {
		globs := b.p.NamesOf(id)
		_, by := b.p.OriginOf(id)
		var why string
		switch n, ok := names[id]; {
		case !ok:
			why = fmt.Sprintf("name cannot be learned: no listing of the account since the check began names %s %s; %s may delete only names matching [%s]",
				b.p.Kind, id, who(by), strings.Join(globs, ", "))
		case !NameInScope(globs, n):
			why = fmt.Sprintf("name %q is outside %s's scope [%s]", n, who(by), strings.Join(globs, ", "))
		default:
			continue
		}
		o := h.outcome(b, id, ledger.StateRefused, nil)
		o.Message = "not deleted: " + why
		outs = append(outs, o)
		refused[id] = true
		b.rep.res.Refused = append(b.rep.res.Refused, id)
	}
	if len(outs) == 0 {
		return nil
	}
	// A later execution of this batch keeps them refused.
	b.rep.settled(outs...)
	b.log.Warn("not deleted: outside the asker's name scope", "ids", idStrings(b.rep.res.Refused), "why", outs[0].Message)
	keep := b.ids[:0:0]
	for _, id := range b.ids {
		if !refused[id] {
			keep = append(keep, id)
		}
	}
	b.ids = keep
	return nil
}

// who names the asker in a refusal.
func who(by string) string {
	if by == "" {
		return "the asker"
	}
	return "token " + by
}

// NameInScope reports whether name matches one of globs (path.Match). A
// malformed glob matches nothing (tokens files are checked when read).
func NameInScope(globs []string, name string) bool {
	for _, g := range globs {
		if ok, err := path.Match(g, name); err == nil && ok {
			return true
		}
	}
	return false
}

// awaitNames returns nil once a listing taken after the batch's ask for
// one is saved, asking for it first if the batch has not; until then it
// returns a ThrottleError (the batch waits without spending a retry).
func (h *Handler) awaitNames(ctx context.Context, b *batch, ids []modelid.ID) error {
	want := inventory.UrgentPrefix + b.a.taskID
	at := max(b.call.Asked, b.p.Asked)
	if at > 0 {
		_, _, err := h.inv.Check(ctx, b.p.Kind, ids, at)
		if err == nil {
			return h.inv.Settled(ctx, want, b.p.Kind)
		}
		if !errors.Is(err, inventory.ErrNoSnapshot) {
			return err
		}
	} else {
		var err error
		if at, err = h.inv.Stamp(ctx); err != nil {
			return err
		}
		if err := h.ledger.NoteAsked(ctx, b.a.taskID, at); err != nil {
			return err
		}
		b.call.Asked = at
	}
	if err := h.inv.Want(ctx, want, b.p.Kind, ids, at, h.now()); err != nil {
		return err
	}
	h.obs.Retry(b.p.Kind, "names")
	b.log.Info("waiting for a listing to learn names for the asker's name scope", "ids", len(ids))
	return &ThrottleError{Wait: h.cfg.VerifyPoll, Err: fmt.Errorf("not deleting %s yet: its name is not known; waiting for a listing", ids[0])}
}
