package inventory

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/modelid"
)

// Redis keys. The hash tag keeps them in one cluster slot, so a new
// snapshot replaces the old one with one RENAME.
const (
	keyPairs      = "qfpurge:{inv}:pairs"       // Key of one form → the other ID's text
	keyPresent    = "qfpurge:{inv}:present"     // Keys present in the last snapshot
	keyPresentNew = "qfpurge:{inv}:present:new" // being written
	keyMeta       = "qfpurge:{inv}:meta"        // the last snapshot's taken (unix ms) and decides
	keyParents    = "qfpurge:{inv}:parents"     // a version's amv- ID → its model's am- ID
	keyNames      = "qfpurge:{inv}:names"       // a model's am- ID → its name, as the last listing showing it gave it
	keyV1Names    = "qfpurge:{inv}:v1names"     // the same, only for models V1's listing showed (V1Names)
	keyProbes     = "qfpurge:{inv}:probes"      // reads spent settling lost answers by name, this window
)

// Store keeps in Redis what the fleet has seen: the int↔string pairs, which
// never change, and the presence set of the last snapshot, so one listing
// serves every worker.
type Store struct{ rdb redis.UniversalClient }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// Save records s's pairs and replaces the last snapshot with s, unless a
// newer one is already saved.
func (st *Store) Save(ctx context.Context, s *Snapshot) error {
	if pairs := s.Pairs(); len(pairs) > 0 {
		if err := st.savePairs(ctx, pairs); err != nil {
			return err
		}
	}
	if err := st.LearnParents(ctx, s.Parents()); err != nil {
		return err
	}
	if err := st.learnNames(ctx, s.Models); err != nil {
		return err
	}
	if err := st.saveNames(ctx, s.Models); err != nil {
		return err
	}
	if len(s.Decides) == 0 {
		return nil // proves nothing: keep the last snapshot
	}
	if s.Seq <= 0 {
		return errors.New("inventory: a snapshot without an order stamp cannot be saved: take one (Store.Stamp) before reading")
	}
	if last, err := st.meta(ctx); err != nil {
		return err
	} else if last.seq >= s.Seq {
		return nil
	}
	if err := st.rdb.Del(ctx, keyPresentNew).Err(); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	keys := s.Keys()
	for lo := 0; lo < len(keys); lo += 10_000 {
		chunk := keys[lo:min(lo+10_000, len(keys))]
		members := make([]any, len(chunk))
		for i, k := range chunk {
			members[i] = k
		}
		if err := st.rdb.SAdd(ctx, keyPresentNew, members...).Err(); err != nil {
			return fmt.Errorf("inventory: save snapshot: %w", err)
		}
	}
	forms := make([]string, len(s.Decides))
	for i, f := range s.Decides {
		forms[i] = f.String()
	}
	pipe := st.rdb.TxPipeline()
	if len(keys) > 0 {
		pipe.Rename(ctx, keyPresentNew, keyPresent)
	} else {
		pipe.Del(ctx, keyPresent)
	}
	pipe.HSet(ctx, keyMeta, "taken", s.Taken.UnixMilli(), "seq", s.Seq, "decides", strings.Join(forms, ","), "ids", len(keys), "models", len(s.Models))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("inventory: save snapshot: %w", err)
	}
	return nil
}

func (st *Store) savePairs(ctx context.Context, pairs map[string]string) error {
	args := make([]any, 0, 2*len(pairs))
	for k, v := range pairs {
		args = append(args, k, v)
	}
	for lo := 0; lo < len(args); lo += 20_000 {
		if err := st.rdb.HSet(ctx, keyPairs, args[lo:min(lo+20_000, len(args))]...).Err(); err != nil {
			return fmt.Errorf("inventory: save pairs: %w", err)
		}
	}
	return nil
}

// LearnParents records which model each version (amv- → am-) belongs to;
// like the ID pairs, that never changes.
func (st *Store) LearnParents(ctx context.Context, parents map[string]string) error {
	args := make([]any, 0, 2*len(parents))
	for v, m := range parents {
		if v != "" && m != "" {
			args = append(args, v, m)
		}
	}
	for lo := 0; lo < len(args); lo += 20_000 {
		if err := st.rdb.HSet(ctx, keyParents, args[lo:min(lo+20_000, len(args))]...).Err(); err != nil {
			return fmt.Errorf("inventory: save parents: %w", err)
		}
	}
	return nil
}

// learnNames records the name of each model V1's listing showed (it has
// its int ID): a lost answer's filtered V1 listing asks for it (V1Names).
// A model only V2 showed gets none: whether V1 lists every model (imported
// ones) is not documented, so its absence from V1 would prove nothing.
func (st *Store) learnNames(ctx context.Context, ms []Model) error {
	args := make([]any, 0, 20_000)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		err := st.rdb.HSet(ctx, keyV1Names, args...).Err()
		args = args[:0]
		if err != nil {
			return fmt.Errorf("inventory: save names: %w", err)
		}
		return nil
	}
	for _, m := range ms {
		if m.ID == "" || m.Name == "" || m.IntID == 0 {
			continue
		}
		if args = append(args, m.ID, m.Name); len(args) >= 20_000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// V1Names returns the name V1's listing last showed for each model ID (int
// IDs through their string form); an ID with none is absent from the map.
func (st *Store) V1Names(ctx context.Context, ids []modelid.ID) (map[modelid.ID]string, error) {
	return st.namesIn(ctx, keyV1Names, modelid.KindModel, ids)
}

// ListingPages estimates what a listing of the account costs: one call per
// 100 models of the last snapshot (0 when none was saved).
func (st *Store) ListingPages(ctx context.Context) (int, error) {
	n, err := st.rdb.HGet(ctx, keyMeta, "models").Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("inventory: %w", err)
	}
	return (n + 99) / 100, nil
}

// spendScript adds ARGV[1] reads to the window's count unless that passes
// ARGV[2]; the window starts with its first read and lasts ARGV[3] ms.
var spendScript = redis.NewScript(`
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if n > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return 0
end
return 1
`)

// SpendProbe reserves reads for settling lost answers by name, across the
// fleet: it reports false, reserving nothing, when the reads of the
// current window (every batch's) would pass limit, a listing's cost, so a
// listing serves them all instead.
func (st *Store) SpendProbe(ctx context.Context, reads, limit int, window time.Duration) (bool, error) {
	ok, err := spendScript.Run(ctx, st.rdb, []string{keyProbes}, reads, limit, window.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("inventory: %w", err)
	}
	return ok == 1, nil
}

// Parents returns the model (am-) of each version (amv-) where a listing or
// detail call has shown it; a missing one is absent from the map.
func (st *Store) Parents(ctx context.Context, versions []string) (map[string]string, error) {
	out := map[string]string{}
	if len(versions) == 0 {
		return out, nil
	}
	vals, err := st.rdb.HMGet(ctx, keyParents, versions...).Result()
	if err != nil {
		return nil, fmt.Errorf("inventory: read parents: %w", err)
	}
	for i, v := range vals {
		if m, ok := v.(string); ok && m != "" {
			out[versions[i]] = m
		}
	}
	return out, nil
}

// saveNames records the models' names as the listing gave them.
func (st *Store) saveNames(ctx context.Context, ms []Model) error {
	args := make([]any, 0, 2*len(ms))
	for _, m := range ms {
		if m.ID != "" && m.Name != "" {
			args = append(args, m.ID, m.Name)
		}
	}
	for lo := 0; lo < len(args); lo += 20_000 {
		if err := st.rdb.HSet(ctx, keyNames, args[lo:min(lo+20_000, len(args))]...).Err(); err != nil {
			return fmt.Errorf("inventory: save names: %w", err)
		}
	}
	return nil
}

// Names returns the name of each of ids of kind k as a listing showed it:
// a model's own, a version's model's. An int ID is named through its
// string form and a version through its model, both as listings taught
// them; an ID with no name known is absent from the map.
func (st *Store) Names(ctx context.Context, k modelid.Kind, ids []modelid.ID) (map[modelid.ID]string, error) {
	return st.namesIn(ctx, keyNames, k, ids)
}

// namesIn looks ids of kind k up in the name table hash (keyNames or
// keyV1Names), both keyed by the model's am- ID.
func (st *Store) namesIn(ctx context.Context, hash string, k modelid.Kind, ids []modelid.ID) (map[modelid.ID]string, error) {
	out := map[modelid.ID]string{}
	if len(ids) == 0 {
		return out, nil
	}
	var ints []modelid.ID
	for _, id := range ids {
		if id.Type() == modelid.IDInt {
			ints = append(ints, id)
		}
	}
	others, err := st.Other(ctx, k, ints)
	if err != nil {
		return nil, err
	}
	strs := make([]string, len(ids)) // am- or amv- forms
	for i, id := range ids {
		if id.Type() == modelid.IDString {
			strs[i] = id.String()
		} else if o, ok := others[id]; ok {
			strs[i] = o.String()
		}
	}
	models := strs
	if k == modelid.KindVersion {
		var vs []string
		for _, s := range strs {
			if s != "" {
				vs = append(vs, s)
			}
		}
		parents, err := st.Parents(ctx, vs)
		if err != nil {
			return nil, err
		}
		models = make([]string, len(strs))
		for i, s := range strs {
			models[i] = parents[s]
		}
	}
	var fields []string
	for _, m := range models {
		if m != "" {
			fields = append(fields, m)
		}
	}
	if len(fields) == 0 {
		return out, nil
	}
	vals, err := st.rdb.HMGet(ctx, hash, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("inventory: read names: %w", err)
	}
	byModel := map[string]string{}
	for i, v := range vals {
		if n, ok := v.(string); ok && n != "" {
			byModel[fields[i]] = n
		}
	}
	for i, m := range models {
		if n, ok := byModel[m]; ok && m != "" {
			out[ids[i]] = n
		}
	}
	return out, nil
}

// Learn records pairs seen outside a listing (a detail call's answer).
func (st *Store) Learn(ctx context.Context, k modelid.Kind, intID int64, strID string) error {
	if intID == 0 || strID == "" {
		return nil
	}
	return st.savePairs(ctx, map[string]string{
		Key(k, modelid.IntID(intID)):    strID,
		Key(k, modelid.StringID(strID)): strconv.FormatInt(intID, 10),
	})
}

// Other returns the other form of each ID (the string ID of an int ID and
// the reverse) where a listing or detail call has shown it; a missing one
// is absent from the map.
func (st *Store) Other(ctx context.Context, k modelid.Kind, ids []modelid.ID) (map[modelid.ID]modelid.ID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	fields := make([]string, len(ids))
	for i, id := range ids {
		fields[i] = Key(k, id)
	}
	vals, err := st.rdb.HMGet(ctx, keyPairs, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("inventory: read pairs: %w", err)
	}
	out := map[modelid.ID]modelid.ID{}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok || s == "" {
			continue
		}
		if ids[i].Type() == modelid.IDString {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				out[ids[i]] = modelid.IntID(n)
			}
			continue
		}
		out[ids[i]] = modelid.StringID(s)
	}
	return out, nil
}

// meta is what the Store keeps of the last snapshot.
type meta struct {
	taken time.Time
	seq   int64
	forms map[Form]bool
}

// meta returns the last snapshot's start, order stamp and the forms it
// decides (zero when there is none).
func (st *Store) meta(ctx context.Context) (meta, error) {
	m, err := st.rdb.HGetAll(ctx, keyMeta).Result()
	if err != nil {
		return meta{}, fmt.Errorf("inventory: %w", err)
	}
	ms, err := strconv.ParseInt(m["taken"], 10, 64)
	if err != nil {
		return meta{}, nil
	}
	out := meta{taken: time.UnixMilli(ms), forms: map[Form]bool{}}
	out.seq, _ = strconv.ParseInt(m["seq"], 10, 64)
	for f := range strings.SplitSeq(m["decides"], ",") {
		k, t, ok := strings.Cut(f, ":")
		if ok {
			out.forms[Form{modelid.Kind(k), modelid.IDType(t)}] = true
		}
	}
	return out, nil
}

// Taken is when the last saved snapshot started (zero when none).
func (st *Store) Taken(ctx context.Context) (time.Time, error) {
	m, err := st.meta(ctx)
	return m.taken, err
}

// Stamp takes the fleet's next order stamp (fleet.Stamp).
func (st *Store) Stamp(ctx context.Context) (int64, error) { return fleet.Stamp(ctx, st.rdb) }

// Presence is what the last snapshot says of one ID.
type Presence int

// The answers.
const (
	// Undecided: the snapshot cannot prove this ID form absent (e.g. an int
	// version ID whose string form no listing has shown).
	Undecided Presence = iota
	Present
	Absent
)

func (p Presence) String() string {
	switch p {
	case Present:
		return "present"
	case Absent:
		return "absent"
	}
	return "undecided"
}

// ErrNoSnapshot means no snapshot started after the stamp asked for.
var ErrNoSnapshot = errors.New("inventory: no complete listing since then")

// Check answers, for each of ids of kind k, whether the last snapshot holds
// it, provided that snapshot's order stamp is after the stamp after (0: any
// snapshot); otherwise it returns ErrNoSnapshot. An int ID is checked
// through its string form when the snapshot does not decide ints itself.
func (st *Store) Check(ctx context.Context, k modelid.Kind, ids []modelid.ID, after int64) ([]Presence, time.Time, error) {
	m, err := st.meta(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	taken, forms := m.taken, m.forms
	if taken.IsZero() || m.seq <= after {
		return nil, taken, ErrNoSnapshot
	}
	others, err := st.Other(ctx, k, ids)
	if err != nil {
		return nil, taken, err
	}
	probe := make([]string, len(ids))
	for i, id := range ids {
		switch {
		case forms[FormOf(k, id)]:
			probe[i] = Key(k, id)
		case others[id] != (modelid.ID{}) && forms[FormOf(k, others[id])]:
			probe[i] = Key(k, others[id])
		}
	}
	var keys []string
	for _, p := range probe {
		if p != "" {
			keys = append(keys, p)
		}
	}
	in := map[string]bool{}
	if len(keys) > 0 {
		got, err := st.rdb.SMIsMember(ctx, keyPresent, toAny(keys)...).Result()
		if err != nil {
			return nil, taken, fmt.Errorf("inventory: check: %w", err)
		}
		for i, k := range keys {
			in[k] = got[i]
		}
	}
	out := make([]Presence, len(ids))
	for i, p := range probe {
		switch {
		case p == "":
			out[i] = Undecided
		case in[p]:
			out[i] = Present
		default:
			out[i] = Absent
		}
	}
	return out, taken, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
