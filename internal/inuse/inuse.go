// Package inuse answers, for model and version IDs, whether the account
// uses them: a custom service of either protocol version in any status
// (New, Deploying, Serving, Failed, Stopped) or a batch inference task that
// is Queuing, Running or Stopping. A model is in use when a service names it
// or when any of its versions is in use.
//
// One View serves the whole fleet: it is built from complete listings
// (DescribeServices with protocolVersion 1 and 2, DescribeBatchInferenceTasks)
// and kept in Redis; a worker that finds it older than MaxAge takes a Redis
// lock and lists again while the others wait for its result. A listing that
// fails part-way answers ErrCannotTell, never "not in use".
package inuse

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/inventory"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// Redis keys, in the inventory's hash slot. The view is one hash: "@taken"
// (unix ms of the listing's start), "@orphans" (JSON reasons that leave a
// model undecided), "@whole" (how many models a service names without a
// version), "u:<id>" (JSON labels of what uses the model or version) and
// "w:<am-id>" (JSON labels of services naming the model but no version,
// which may run any of its versions).
const (
	keyView    = "qfpurge:{inv}:inuse"
	keyViewNew = "qfpurge:{inv}:inuse:new"
	keyLock    = "qfpurge:{inv}:inuse:lock"
	keyFailed  = "qfpurge:{inv}:inuse:failed" // why the last listing failed, for MaxAge
)

// ErrCannotTell means the view could not be built from complete listings
// (or another worker's listing did not finish in time): nothing may be
// deleted now, and asking again later is right. It wraps the cause.
var ErrCannotTell = errors.New("inuse: cannot tell what is in use")

// State is the answer for one ID.
type State int

// The states. Unknown is the zero value, so an answer never set is never
// taken for Free.
const (
	Unknown State = iota
	Free
	InUse
)

func (s State) String() string {
	switch s {
	case Free:
		return "free"
	case InUse:
		return "in use"
	}
	return "unknown"
}

// MarshalText writes the state as its String.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Result is the answer for one ID.
type Result struct {
	ID    modelid.ID `json:"id"`
	State State      `json:"state"`
	// Users name what uses it (InUse): `service NAME (svco-…, protocol v2,
	// Serving)`, `batch inference task NAME (infer-…, Running)`, with
	// `on version amv-…` when a model is used through a version.
	Users []string `json:"users,omitempty"`
	// Reason says, for people, why the ID is in use or cannot be told.
	Reason string `json:"reason,omitempty"`
}

// Config tunes a View. Zero fields take their defaults.
type Config struct {
	// MaxAge is the oldest a view may be and still be used. Default 2s.
	MaxAge time.Duration
	// Now is the clock every freshness decision reads. Default time.Now.
	Now func() time.Time
	// LockTTL bounds how long a worker that dies holding the listing lock
	// blocks the others; a live holder renews it while it lists. Default
	// 10s.
	LockTTL time.Duration
	// Wait is how long a worker waits for another's listing before
	// answering ErrCannotTell; Poll how often it looks. Defaults 30s, 50ms.
	Wait, Poll time.Duration
	// RefreshAhead, when positive, makes a check that finds the view at
	// least this old, though still fresh, list again itself under the lock
	// while the fleet's other checks go on with the current view: when a
	// listing takes less than MaxAge-RefreshAhead, the fleet does not wait
	// for one at MaxAge, at the price of more reads.
	// Worth it when reads have a budget of their own (a read-only key
	// pair). Default 0: off, a view is listed again only once stale.
	RefreshAhead time.Duration
	// DescribeLimit is the most DescribeModel calls one listing makes to
	// learn the model of a used version no listing has placed. Default 100.
	DescribeLimit int
}

func (c Config) withDefaults() Config {
	if c.MaxAge <= 0 {
		c.MaxAge = 2 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LockTTL <= 0 {
		c.LockTTL = 10 * time.Second
	}
	if c.Wait <= 0 {
		c.Wait = 30 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = 50 * time.Millisecond
	}
	if c.DescribeLimit <= 0 {
		c.DescribeLimit = 100
	}
	return c
}

// View is the fleet's shared in-use view. It is safe for concurrent use.
type View struct {
	rdb   redis.UniversalClient
	qc    *qianfan.Client
	store *inventory.Store
	cfg   Config
}

// New returns a View reading Qianfan through qc and sharing its listing in
// rdb.
func New(rdb redis.UniversalClient, qc *qianfan.Client, cfg Config) *View {
	return &View{rdb: rdb, qc: qc, store: inventory.NewStore(rdb), cfg: cfg.withDefaults()}
}

// Check answers, for each of ids of kind k in order, whether it is in use,
// from a view at most MaxAge old (listing again first when it is older).
// An int ID is checked through its string form as a listing showed it; one
// whose string form no listing has shown is Unknown. An error wrapping
// ErrCannotTell means the listings could not be read completely.
func (v *View) Check(ctx context.Context, k modelid.Kind, ids []modelid.ID) ([]Result, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := v.ensure(ctx); err != nil {
		return nil, err
	}
	out := make([]Result, len(ids))
	strs, err := v.stringForms(ctx, k, ids, out)
	if err != nil {
		return nil, err
	}
	var parents map[string]string
	if k == modelid.KindVersion {
		if parents, err = v.store.Parents(ctx, nonEmpty(strs)); err != nil {
			return nil, err
		}
	}
	fields := []string{"@taken", "@orphans", "@whole"}
	for _, s := range strs {
		if s != "" {
			fields = append(fields, "u:"+s, "w:"+parents[s])
		}
	}
	vals, err := v.rdb.HMGet(ctx, keyView, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("inuse: read the view: %w", err)
	}
	got := map[string]string{}
	for i, f := range fields {
		if s, ok := vals[i].(string); ok {
			got[f] = s
		}
	}
	if got["@taken"] == "" {
		return nil, fmt.Errorf("%w: the view vanished from Redis", ErrCannotTell)
	}
	var orphans []string
	_ = json.Unmarshal([]byte(cmp.Or(got["@orphans"], "[]")), &orphans)
	whole, _ := strconv.Atoi(got["@whole"])
	for i, s := range strs {
		if s == "" {
			continue // answered by stringForms
		}
		out[i] = answer(k, ids[i], s, parents[s], labels(got["u:"+s]), labels(got["w:"+parents[s]]), orphans, whole)
	}
	return out, nil
}

// answer decides one ID from what the view holds for it.
func answer(k modelid.Kind, id modelid.ID, s, parent string, used, wholeModel, orphans []string, whole int) Result {
	r := Result{ID: id}
	if k == modelid.KindVersion {
		used = append(used, wholeModel...)
	}
	switch {
	case len(used) > 0:
		r.State, r.Users = InUse, used
		r.Reason = "used by " + strings.Join(used, ", ")
	case k == modelid.KindModel && len(orphans) > 0:
		r.Reason = "cannot tell: " + orphans[0]
		if len(orphans) > 1 {
			r.Reason += fmt.Sprintf(" (and %d more)", len(orphans)-1)
		}
	case k == modelid.KindVersion && parent == "" && whole > 0:
		r.Reason = fmt.Sprintf("cannot tell: no listing has shown the model of %s, and %d models are used by services naming no version", s, whole)
	default:
		r.State = Free
	}
	return r
}

// stringForms returns each ID's string form, "" where it has none known
// (the Result is then filled in as Unknown).
func (v *View) stringForms(ctx context.Context, k modelid.Kind, ids []modelid.ID, out []Result) ([]string, error) {
	others, err := v.store.Other(ctx, k, ids)
	if err != nil {
		return nil, err
	}
	prefix := map[modelid.Kind]string{modelid.KindModel: "am-", modelid.KindVersion: "amv-"}[k]
	strs := make([]string, len(ids))
	for i, id := range ids {
		switch {
		case id.Type() == modelid.IDString && strings.HasPrefix(id.String(), prefix):
			strs[i] = id.String()
		case id.Type() == modelid.IDString:
			out[i] = Result{ID: id, Reason: fmt.Sprintf("cannot tell: %s is not a %s ID (%s…)", id, k, prefix)}
		case others[id] != (modelid.ID{}):
			strs[i] = others[id].String()
		default:
			out[i] = Result{ID: id, Reason: "cannot tell: no listing has shown this int ID's string form, so what uses it cannot be checked"}
		}
	}
	return strs, nil
}

// Protected is Check in the shape the batch handler's Guard takes: each ID
// in use or Unknown, mapped to its users or the reason it cannot be told.
func (v *View) Protected(ctx context.Context, k modelid.Kind, ids []modelid.ID) (map[modelid.ID]string, error) {
	rs, err := v.Check(ctx, k, ids)
	if err != nil {
		return nil, err
	}
	out := map[modelid.ID]string{}
	for _, r := range rs {
		switch r.State {
		case InUse:
			out[r.ID] = strings.Join(r.Users, ", ")
		case Unknown:
			out[r.ID] = "(" + r.Reason + ")"
		}
	}
	return out, nil
}

// Taken returns when the shared view's listing started; zero when there is
// none.
func (v *View) Taken(ctx context.Context) (time.Time, error) {
	ms, err := v.rdb.HGet(ctx, keyView, "@taken").Int64()
	switch {
	case errors.Is(err, redis.Nil):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("inuse: %w", err)
	}
	return time.UnixMilli(ms), nil
}

// fresh: taken at most MaxAge ago (a clock behind another worker's by less
// than MaxAge still counts it fresh).
func (v *View) fresh(taken time.Time) bool {
	if taken.IsZero() {
		return false
	}
	age := v.cfg.Now().Sub(taken)
	return age < v.cfg.MaxAge && age > -v.cfg.MaxAge
}

// ensure makes the shared view fresh: it is, or this worker lists again
// under the lock, or another worker does and this one waits for it.
func (v *View) ensure(ctx context.Context) error {
	polls := int(v.cfg.Wait / v.cfg.Poll)
	for n := 0; ; n++ {
		taken, err := v.Taken(ctx)
		if err != nil {
			return err
		}
		if v.fresh(taken) {
			if v.cfg.RefreshAhead > 0 && v.cfg.Now().Sub(taken) >= v.cfg.RefreshAhead {
				return v.refreshAhead(ctx)
			}
			return nil
		}
		// A listing failed moments ago (refused credentials, a page that
		// failed): the fleet does not try again before MaxAge.
		if why, err := v.rdb.Get(ctx, keyFailed).Result(); err == nil {
			return fmt.Errorf("%w: the last listing failed moments ago: %s", ErrCannotTell, why)
		}
		token, err := v.lock(ctx)
		if err != nil {
			return err
		}
		if token != "" {
			lctx, stop := context.WithCancel(ctx)
			go v.keepLock(lctx, token)
			err := v.refresh(ctx)
			stop()
			if err != nil {
				_ = v.rdb.Set(context.WithoutCancel(ctx), keyFailed, err.Error(), v.cfg.MaxAge).Err()
			}
			v.unlock(context.WithoutCancel(ctx), token)
			return err
		}
		if n >= polls {
			return fmt.Errorf("%w: another worker's listing did not finish within %s", ErrCannotTell, v.cfg.Wait)
		}
		t := time.NewTimer(v.cfg.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// refreshAhead lists again while the view is still fresh, unless another
// worker does or a listing failed moments ago. Its failure is recorded as
// any listing's, and the current view still answers until it is stale.
func (v *View) refreshAhead(ctx context.Context) error {
	if n, err := v.rdb.Exists(ctx, keyFailed).Result(); err != nil || n > 0 {
		return nil
	}
	token, err := v.lock(ctx)
	if err != nil || token == "" {
		return nil
	}
	lctx, stop := context.WithCancel(ctx)
	go v.keepLock(lctx, token)
	err = v.refresh(ctx)
	stop()
	if err != nil {
		_ = v.rdb.Set(context.WithoutCancel(ctx), keyFailed, err.Error(), v.cfg.MaxAge).Err()
	}
	v.unlock(context.WithoutCancel(ctx), token)
	return nil
}

// lock takes the listing lock; "" when another worker holds it.
func (v *View) lock(ctx context.Context) (string, error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	ok, err := v.rdb.SetNX(ctx, keyLock, token, v.cfg.LockTTL).Result()
	if err != nil {
		return "", fmt.Errorf("inuse: take the listing lock: %w", err)
	}
	if !ok {
		return "", nil
	}
	return token, nil
}

var renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)

// keepLock renews the lock while its holder lists, so a short TTL frees it
// soon after a holder dies, never under a live one.
func (v *View) keepLock(ctx context.Context, token string) {
	t := time.NewTicker(v.cfg.LockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = renewScript.Run(ctx, v.rdb, []string{keyLock}, token, v.cfg.LockTTL.Milliseconds()).Err()
		}
	}
}

var unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// unlock releases the lock if this worker still holds it; a failure leaves
// it to expire.
func (v *View) unlock(ctx context.Context, token string) {
	_ = unlockScript.Run(ctx, v.rdb, []string{keyLock}, token).Err()
}

// refresh lists what uses models and replaces the shared view.
func (v *View) refresh(ctx context.Context) error {
	taken := v.cfg.Now()
	snap, err := inventory.Read(ctx, v.qc, inventory.SourceServices)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCannotTell, err)
	}
	parents, orphans, err := v.placeVersions(ctx, snap)
	if err != nil {
		return err
	}
	return v.save(ctx, build(snap, parents, orphans, taken))
}

// placeVersions finds the model of every version a user runs: from the
// users themselves, from what listings taught the fleet, and at most
// DescribeLimit DescribeModel calls. A version left unplaced is an orphan:
// it leaves every model query it could concern undecided.
func (v *View) placeVersions(ctx context.Context, snap *inventory.Snapshot) (map[string]string, []string, error) {
	parents := snap.Parents()
	if err := v.store.LearnParents(ctx, parents); err != nil {
		return nil, nil, err
	}
	var need []string
	users := map[string]inventory.Service{}
	for _, u := range snap.Services {
		for _, ver := range u.Versions {
			if parents[ver] == "" && !slices.Contains(need, ver) {
				need = append(need, ver)
				users[ver] = u
			}
		}
	}
	known, err := v.store.Parents(ctx, need)
	if err != nil {
		return nil, nil, err
	}
	var orphans []string
	learned := map[string]string{}
	calls := 0
	for _, ver := range need {
		if m := known[ver]; m != "" {
			parents[ver] = m
			continue
		}
		why := "DescribeModel limit reached"
		if calls < v.cfg.DescribeLimit {
			calls++
			m, _, err := v.qc.DescribeModel(ctx, ver)
			if err == nil && m.ModelSetID != "" {
				parents[ver], learned[ver] = m.ModelSetID, m.ModelSetID
				continue
			}
			why = fmt.Sprintf("DescribeModel: %v", err)
		}
		orphans = append(orphans, fmt.Sprintf("%s runs version %s, whose model is unknown (%s)", users[ver].Label(), ver, why))
	}
	return parents, orphans, v.store.LearnParents(ctx, learned)
}

// build lays the view out as the hash's fields.
func build(snap *inventory.Snapshot, parents map[string]string, orphans []string, taken time.Time) map[string]any {
	uses := map[string][]string{}
	whole := map[string][]string{}
	for _, u := range snap.Services {
		label := u.Label()
		for _, m := range u.Models {
			uses[m] = appendNew(uses[m], label)
			if len(u.Versions) == 0 {
				whole[m] = appendNew(whole[m], label)
			}
		}
		for _, ver := range u.Versions {
			uses[ver] = appendNew(uses[ver], label)
			if m := parents[ver]; m != "" && !slices.Contains(u.Models, m) {
				uses[m] = appendNew(uses[m], label+" on version "+ver)
			}
		}
	}
	o, _ := json.Marshal(orphans)
	fields := map[string]any{"@taken": taken.UnixMilli(), "@orphans": string(o), "@whole": len(whole)}
	for id, ls := range uses {
		b, _ := json.Marshal(ls)
		fields["u:"+id] = string(b)
	}
	for id, ls := range whole {
		b, _ := json.Marshal(ls)
		fields["w:"+id] = string(b)
	}
	return fields
}

// save replaces the shared view at once.
func (v *View) save(ctx context.Context, fields map[string]any) error {
	pipe := v.rdb.TxPipeline()
	pipe.Del(ctx, keyViewNew)
	pipe.HSet(ctx, keyViewNew, fields)
	pipe.Rename(ctx, keyViewNew, keyView)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("inuse: save the view: %w", err)
	}
	return nil
}

func appendNew(ls []string, l string) []string {
	if slices.Contains(ls, l) {
		return ls
	}
	return append(ls, l)
}

func labels(s string) []string {
	var ls []string
	if s != "" {
		_ = json.Unmarshal([]byte(s), &ls)
	}
	return ls
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
