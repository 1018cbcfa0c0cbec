package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/ledger"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Finder reads a handful of models instead of the whole account: what
// settles a lost answer at a cost that grows with the lost IDs, not with
// the account.
type Finder interface {
	// Named lists, through V1 user/list with nameFilter, every model the
	// filter matches, all its pages. A filter matching more than maxPages
	// pages is errTooMany: a listing of the account costs about as much.
	Named(ctx context.Context, name string, maxPages int) (qianfan.V1Listing, error)
	// Versions reads a model's V1 detail, which lists all its versions.
	Versions(ctx context.Context, model modelid.ID) (qianfan.ModelDetail, error)
}

// errTooMany: a name filter matches too many models to be worth walking.
var errTooMany = errors.New("the name filter matches too many models")

// probePages is the most pages one name's filtered listing may take.
const probePages = 3

// QianfanFinder is the Finder on Qianfan's V1 API.
type QianfanFinder struct{ Client *qianfan.Client }

// Named reads the first page of the filtered listing; a filter that fits
// in it costs one call.
func (f QianfanFinder) Named(ctx context.Context, name string, maxPages int) (qianfan.V1Listing, error) {
	req := qianfan.ModelListRequest{PageNo: 1, PageSize: 100, NameFilter: name}
	page, _, err := f.Client.ListModels(ctx, req)
	if err != nil {
		return qianfan.V1Listing{}, err
	}
	if n := len(page.Items); n >= page.Total {
		// One page holds them all: one answer, a snapshot of the filter.
		l := qianfan.V1Listing{FirstTotal: page.Total, LastTotal: page.Total, Seen: n, Pages: 1}
		seen := map[int64]bool{}
		for _, m := range page.Items {
			if !seen[m.ModelID] {
				seen[m.ModelID] = true
				l.Models = append(l.Models, m)
			}
		}
		return l, nil
	} else if n == 0 || (page.Total+n-1)/n > maxPages {
		return qianfan.V1Listing{}, fmt.Errorf("%w (%d models named like %q)", errTooMany, page.Total, name)
	}
	return f.Client.WalkModelsV1(ctx, req)
}

// Versions calls modelDetail.
func (f QianfanFinder) Versions(ctx context.Context, model modelid.ID) (qianfan.ModelDetail, error) {
	d, _, err := f.Client.ModelDetail(ctx, model)
	return d, err
}

// probeWindow is how long the fleet's reads by name add up against the cost
// of one listing (inventory.Store.SpendProbe).
const probeWindow = 10 * time.Minute

// chooseProbe tells whether the batch in doubt is settled by reads by name
// rather than by a listing of the account: every ID must have what a read
// needs (a model's name shown before the call, a version's model), and the
// reads, with those of the fleet's other batches lately, must cost less
// than a listing.
func (h *Handler) chooseProbe(ctx context.Context, b *batch, call ledger.Call) (bool, error) {
	if h.cfg.Finder == nil {
		return false, nil
	}
	keys, err := h.probeKeys(ctx, b, call)
	if err != nil || keys == nil {
		return false, err
	}
	reads := len(distinct(keys))
	pages, err := h.inv.ListingPages(ctx)
	if err != nil {
		return false, err
	}
	limit := pages
	if pages == 0 {
		limit = h.cfg.BatchSize // no listing yet tells the account's size: a batch's worth
	}
	if reads > limit {
		return false, nil
	}
	return h.inv.SpendProbe(ctx, reads, limit, probeWindow)
}

// probeKeys returns what each ID of the batch is read by: a model's name
// (shown before the first call), a version's model (am-); nil when an ID
// has none.
func (h *Handler) probeKeys(ctx context.Context, b *batch, call ledger.Call) ([]string, error) {
	keys := make([]string, len(b.ids))
	if b.p.Kind == modelid.KindModel {
		for i, id := range b.ids {
			n := call.Names[id.String()]
			if n == "" {
				return nil, nil
			}
			keys[i] = n
		}
		return keys, nil
	}
	amv := make([]string, len(b.ids))
	var ints []modelid.ID
	for i, id := range b.ids {
		if id.Type() == modelid.IDString {
			amv[i] = id.String()
		} else {
			ints = append(ints, id)
		}
	}
	if len(ints) > 0 {
		others, err := h.inv.Other(ctx, modelid.KindVersion, ints)
		if err != nil {
			return nil, err
		}
		for i, id := range b.ids {
			if o, ok := others[id]; ok {
				amv[i] = o.String()
			}
		}
	}
	for _, v := range amv {
		if v == "" {
			return nil, nil
		}
	}
	parents, err := h.inv.Parents(ctx, amv)
	if err != nil {
		return nil, err
	}
	for i, v := range amv {
		if keys[i] = parents[v]; keys[i] == "" {
			return nil, nil
		}
	}
	return keys, nil
}

func distinct(ss []string) map[string]bool {
	out := map[string]bool{}
	for _, s := range ss {
		out[s] = true
	}
	return out
}

// probe reads the IDs of a batch in doubt by name, once its lost call is
// old enough (ProbeAfter) to have landed if it was in flight. When the
// reads decide every ID it returns each one's presence and when the reads
// started; otherwise nil, asking for a listing of the account, as without
// a Finder.
func (h *Handler) probe(ctx context.Context, b *batch, call ledger.Call) ([]inventory.Presence, time.Time, error) {
	if !call.Lost.IsZero() && h.now().Sub(call.Lost) < h.cfg.ProbeAfter {
		return nil, time.Time{}, nil
	}
	pres, taken, err := h.probeRead(ctx, b, call)
	if err != nil {
		if qianfan.Classify(err) == qianfan.ClassThrottled {
			h.obs.Retry(b.p.Kind, "throttled")
			return nil, time.Time{}, &ThrottleError{Wait: throttleWait(err), Err: fmt.Errorf("reading IDs by name after a lost answer: %w", err)}
		}
		b.log.Warn("reading the IDs by name could not settle the lost answer; asking for a listing", "err", err)
		if err := h.ledger.NoteProbe(ctx, b.a.taskID, ledger.ProbeListing); err != nil {
			return nil, time.Time{}, err
		}
		return nil, time.Time{}, h.inv.Want(ctx, b.a.taskID, b.p.Kind, b.ids, call.LostSeq, h.now())
	}
	return pres, taken, nil
}

// errUndecided: a read by name could not decide an ID.
var errUndecided = errors.New("a read by name did not decide every ID")

// probeRead reads the batch's IDs by name: a model through the V1 listing
// filtered by its name, which, complete, shows every model so named (the
// fake's V1NameFilterPrefix: Baidu does not say whether the filter matches
// a prefix or a substring, and either holds the exact name); a version
// through its model's detail, which lists all its versions. It returns
// each ID's presence and when the reads started; an error when any ID is
// left undecided.
func (h *Handler) probeRead(ctx context.Context, b *batch, call ledger.Call) ([]inventory.Presence, time.Time, error) {
	keys, err := h.probeKeys(ctx, b, call)
	if err != nil {
		return nil, time.Time{}, err
	}
	if keys == nil {
		return nil, time.Time{}, errUndecided
	}
	taken := h.now()
	pres := make([]inventory.Presence, len(b.ids))
	read := map[string]func(modelid.ID) bool{}
	for i, id := range b.ids {
		in, ok := read[keys[i]]
		if !ok {
			start := h.now()
			if b.p.Kind == modelid.KindModel {
				in, err = h.readNamed(ctx, keys[i])
			} else {
				in, err = h.readVersions(ctx, keys[i])
			}
			h.obs.Call(b.p.Kind, id.Type(), "probe:"+probeOutcome(err), 1, h.now().Sub(start))
			if err != nil {
				return nil, taken, err
			}
			read[keys[i]] = in
		}
		pres[i] = inventory.Absent
		if in(id) {
			pres[i] = inventory.Present
		}
	}
	return pres, taken, nil
}

// readNamed lists the models named like name and tells which IDs it shows.
func (h *Handler) readNamed(ctx context.Context, name string) (func(modelid.ID) bool, error) {
	l, err := h.cfg.Finder.Named(ctx, name, probePages)
	if err != nil {
		return nil, err
	}
	if !l.Consistent() {
		return nil, fmt.Errorf("%w: the listing of %q moved under its walk", errUndecided, name)
	}
	ints, strs := map[int64]bool{}, map[string]bool{}
	for _, m := range l.Models {
		ints[m.ModelID], strs[m.ModelIDStr] = true, true
	}
	return func(id modelid.ID) bool {
		if n, ok := id.Int(); ok {
			return ints[n]
		}
		return strs[id.String()]
	}, nil
}

// readVersions reads a model's detail and tells which of its versions it
// lists. A detail that does not show the model decides nothing: "not
// found" is not documented.
func (h *Handler) readVersions(ctx context.Context, model string) (func(modelid.ID) bool, error) {
	d, err := h.cfg.Finder.Versions(ctx, modelid.StringID(model))
	if err != nil {
		return nil, err
	}
	if d.ModelIDStr != model {
		return nil, fmt.Errorf("%w: the detail of %s shows %q", errUndecided, model, d.ModelIDStr)
	}
	ints, strs := map[int64]bool{}, map[string]bool{}
	for _, v := range d.Versions {
		ints[v.ModelVersionID], strs[v.ModelVersionIDStr] = true, true
	}
	return func(id modelid.ID) bool {
		if n, ok := id.Int(); ok {
			return ints[n]
		}
		return strs[id.String()]
	}, nil
}

func probeOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, errTooMany):
		return "too-many"
	case errors.Is(err, errUndecided):
		return "undecided"
	}
	return callOutcome(err)
}
