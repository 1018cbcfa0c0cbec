package inventory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/fleet"
	"github.com/qfpurge/qfpurge/internal/maintenance"
	"github.com/qfpurge/qfpurge/internal/modelid"
	"github.com/qfpurge/qfpurge/internal/qianfan"
)

// More keys of the verification.
const (
	keyWanted   = "qfpurge:{inv}:wanted"    // "<form> <task ID>" scored by the order stamp of the want
	keyWantedAt = "qfpurge:{inv}:wanted:at" // the same members scored by when they were wanted (unix ms)
	keyLock     = "qfpurge:{inv}:lock"      // held by the worker taking a listing
	keyHold     = "qfpurge:{inv}:hold"      // exists while a V1 listing wants no deletions under way
)

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// MaxWait is the longest a wanted listing waits for the queue to go
	// quiet (a listing taken while deletions run may need another soon
	// after). Defaults to 2 minutes.
	MaxWait time.Duration
	// Poll is how often the verifier looks for wanted listings. Defaults to 2s.
	Poll time.Duration
	// Quiet reports whether no deletion work is waiting or running; nil
	// counts as never quiet (only MaxWait triggers).
	Quiet func(context.Context) bool
	// CallsUnderWay counts delete calls begun since a time and not yet
	// answered (ledger.CallsUnderWay); a V1 listing waits for them. nil
	// counts none.
	CallsUnderWay func(ctx context.Context, since time.Time) (int, error)
	// V2Only, when set and true, keeps listings off V1 (the fleet deletes
	// through V2 because V1 is gone): ints are decided through their pairs.
	V2Only func(context.Context) bool
	// Observe, when set, hears of every listing taken.
	Observe func(forms []Form, took time.Duration, err error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock defaults to the wall clock.
	Clock fleet.Clock
	// Paused, when set and true, holds listings back: the fleet's
	// credentials are refused, and a listing would only be refused too.
	Paused func(context.Context) bool
	// Ticker paces the verifier's and the refresh's loops. Defaults to
	// maintenance.SystemTicker.
	Ticker maintenance.NewTicker
}

// Verifier settles lost answers for the whole fleet: a task that cannot tell
// whether a lost call deleted its IDs asks for a listing (Want) and waits;
// one worker at a time takes the listing, once, for every task waiting, and
// saves it in the Store, where each task reads its answer (Store.Check).
type Verifier struct {
	rdb   redis.UniversalClient
	store *Store
	qc    *qianfan.Client
	cfg   VerifierConfig
	id    string
}

// NewVerifier returns a Verifier reading through qc.
func NewVerifier(rdb redis.UniversalClient, qc *qianfan.Client, cfg VerifierConfig) *Verifier {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 2 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Clock = fleet.Or(cfg.Clock)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Verifier{rdb: rdb, store: NewStore(rdb), qc: qc, cfg: cfg, id: hex.EncodeToString(b)}
}

// UrgentPrefix marks a want whose task cannot start its first call until
// a listing answers (the in-use check needs an int ID's string form): it
// is taken at the next poll, not when the queue goes quiet.
const UrgentPrefix = "urgent:"

// Want asks for a listing that decides the IDs of kind k of task taskID,
// started after the order stamp after (the batch's lost answer); now is
// when it was asked, for VerifierConfig.MaxWait.
func (st *Store) Want(ctx context.Context, taskID string, k modelid.Kind, ids []modelid.ID, after int64, now time.Time) error {
	rdb := st.rdb
	forms := map[Form]bool{}
	for _, id := range ids {
		forms[FormOf(k, id)] = true
	}
	pipe := rdb.Pipeline()
	for f := range forms {
		m := f.String() + " " + taskID
		pipe.ZAddNX(ctx, keyWanted, redis.Z{Score: float64(after), Member: m})
		pipe.ZAddNX(ctx, keyWantedAt, redis.Z{Score: float64(now.UnixMilli()), Member: m})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("inventory: want a listing: %w", err)
	}
	return nil
}

// Settled withdraws taskID's wants.
func (st *Store) Settled(ctx context.Context, taskID string, k modelid.Kind) error {
	pipe := st.rdb.Pipeline()
	for _, t := range []modelid.IDType{modelid.IDInt, modelid.IDString} {
		pipe.ZRem(ctx, keyWanted, Form{k, t}.String()+" "+taskID)
		pipe.ZRem(ctx, keyWantedAt, Form{k, t}.String()+" "+taskID)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Hold asks the fleet to start no delete call for ttl (or until Release).
func (st *Store) Hold(ctx context.Context, owner string, ttl time.Duration) error {
	return st.rdb.Set(ctx, keyHold, owner, ttl).Err()
}

// Release ends a Hold.
func (st *Store) Release(ctx context.Context) error { return st.rdb.Del(ctx, keyHold).Err() }

// Held reports whether deletions should wait for a listing under way.
func (st *Store) Held(ctx context.Context) (bool, error) {
	n, err := st.rdb.Exists(ctx, keyHold).Result()
	return n > 0, err
}

// Once takes a listing if one is wanted and due and no other worker is
// taking one. It reports the listing's error, if any.
func (v *Verifier) Once(ctx context.Context) error {
	if v.cfg.Paused != nil && v.cfg.Paused(ctx) {
		return nil
	}
	wanted, err := v.rdb.ZRangeWithScores(ctx, keyWanted, 0, -1).Result()
	if err != nil || len(wanted) == 0 {
		return err
	}
	last, err := v.store.meta(ctx)
	if err != nil {
		return err
	}
	forms := map[Form]bool{}
	var due []string
	urgent := false
	for _, z := range wanted {
		if last.seq > int64(z.Score) {
			continue // the last listing answers it
		}
		m := z.Member.(string)
		due = append(due, m)
		_, task, _ := strings.Cut(m, " ")
		urgent = urgent || strings.HasPrefix(task, UrgentPrefix)
		f, _, _ := strings.Cut(m, " ")
		k, t, _ := strings.Cut(f, ":")
		forms[Form{modelid.Kind(k), modelid.IDType(t)}] = true
	}
	if len(due) == 0 {
		return nil
	}
	now := v.cfg.Clock.Now()
	oldest := now
	ats, err := v.rdb.ZMScore(ctx, keyWantedAt, due...).Result()
	if err != nil {
		return err
	}
	for _, ms := range ats {
		if at := time.UnixMilli(int64(ms)); ms > 0 && at.Before(oldest) {
			oldest = at
		}
	}
	if !urgent && now.Sub(oldest) < v.cfg.MaxWait && (v.cfg.Quiet == nil || !v.cfg.Quiet(ctx)) {
		return nil
	}
	ok, err := v.rdb.SetNX(ctx, keyLock, v.id, time.Minute).Result()
	if err != nil || !ok {
		return err
	}
	defer v.rdb.Del(context.WithoutCancel(ctx), keyLock)
	defer v.keepLock(ctx)()
	return v.list(ctx, forms)
}

// keepLock extends the lock while a listing runs, until the returned stop,
// which returns once it no longer does.
func (v *Verifier) keepLock(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				v.rdb.Expire(ctx, keyLock, time.Minute)
				v.rdb.Expire(ctx, keyHold, time.Minute)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// list reads what decides forms and saves it. Int model IDs need V1, which
// proves absence only when nothing was deleted during the walk, so the fleet
// holds its deletions meanwhile; if the walk still moved (someone else
// deleted or created models), V2 is read too and ints are decided through
// their pairs.
func (v *Verifier) list(ctx context.Context, forms map[Form]bool) (err error) {
	start := time.Now()
	var fs []Form
	for f := range forms {
		fs = append(fs, f)
	}
	defer func() {
		if v.cfg.Observe != nil {
			v.cfg.Observe(fs, time.Since(start), err)
		}
	}()
	src := SourceV2
	v2Only := v.cfg.V2Only != nil && v.cfg.V2Only(ctx)
	if forms[Form{modelid.KindModel, modelid.IDInt}] && !v2Only {
		src = SourceV1
		if forms[Form{modelid.KindVersion, modelid.IDString}] || forms[Form{modelid.KindVersion, modelid.IDInt}] {
			src |= SourceV2
		}
		if err := v.hold(ctx); err != nil {
			return err
		}
		defer v.store.Release(context.WithoutCancel(ctx))
	}
	v.cfg.Logger.Info("taking a listing to settle lost answers", "forms", fs)
	s, err := v.read(ctx, src)
	if err != nil {
		return err
	}
	if src == SourceV1 && !s.decides(Form{modelid.KindModel, modelid.IDInt}) {
		v.cfg.Logger.Info("the V1 listing moved under its walk; reading V2 as well")
		s2, err := v.read(ctx, SourceV2|SourceV1)
		if err != nil {
			return err
		}
		s = s2
	}
	if err := v.store.Save(ctx, s); err != nil {
		return err
	}
	// Wants stamped before this listing are answered.
	v.rdb.ZRemRangeByScore(ctx, keyWanted, "-inf", "("+strconv.FormatInt(s.Seq, 10))
	v.cfg.Logger.Info("listing taken", "models", len(s.Models), "decides", s.Decides, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// read takes the fleet's order stamp, then the listing: every loss
// stamped before it happened before its first page was read.
func (v *Verifier) read(ctx context.Context, src Source) (*Snapshot, error) {
	seq, err := v.store.Stamp(ctx)
	if err != nil {
		return nil, err
	}
	start := v.cfg.Clock.Now()
	s, err := Read(ctx, v.qc, src)
	if err != nil {
		return nil, err
	}
	// The refresh compares Taken with the same clock.
	s.Seq, s.Taken = seq, start
	return s, nil
}

func (s *Snapshot) decides(f Form) bool {
	for _, d := range s.Decides {
		if d == f {
			return true
		}
	}
	return false
}

// hold asks the fleet to start no delete call and waits (up to 30 s) for the
// calls under way to end. Entries older than 5 minutes are a crashed
// worker's and do not count.
func (v *Verifier) hold(ctx context.Context) error {
	if err := v.store.Hold(ctx, v.id, time.Minute); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if v.cfg.CallsUnderWay == nil {
			return nil
		}
		n, err := v.cfg.CallsUnderWay(ctx, v.cfg.Clock.Now().Add(-5*time.Minute))
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil // the walk's consistency check catches a late deletion
}
