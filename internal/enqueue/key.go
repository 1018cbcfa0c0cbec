package enqueue

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qfpurge/qfpurge/internal/modelid"
)

// keyRequest holds, per idempotency key, the digest of the request that
// first used it.
const keyRequest = "qfpurge:request:"

// keyTTL is how long a key's digest is kept: as long as the ledger keeps
// outcomes by default, so a key is never reused for other IDs while its
// first request can still be followed.
const keyTTL = 30 * 24 * time.Hour

// ErrKeyConflict: an idempotency key was used before for a request with
// other IDs or kind. Nothing was enqueued.
var ErrKeyConflict = errors.New("idempotency key already used for a different request")

// KeyConflictError names the key that conflicts.
type KeyConflictError struct{ Key string }

func (e *KeyConflictError) Error() string {
	return fmt.Sprintf("idempotency key %q already used for a different request (other IDs or kind); use a new key", e.Key)
}

// Unwrap makes errors.Is(err, ErrKeyConflict) true.
func (e *KeyConflictError) Unwrap() error { return ErrKeyConflict }

// Digest sums a request's IDs as a set, in any order and with repeats
// counted once by the caller: two requests with the same IDs have the same
// digest however their input was ordered. Add each distinct ID once.
type Digest struct {
	sum [4]uint64
	n   uint64
}

// Add counts one distinct ID.
func (d *Digest) Add(id modelid.ID) {
	h := sha256.Sum256([]byte(string(id.Type()) + ":" + id.String()))
	for i := range d.sum {
		d.sum[i] += binary.LittleEndian.Uint64(h[8*i:])
	}
	d.n++
}

// Sum renders the digest of the IDs with the request's kind and rule run.
// The time is left out: a retried "in an hour" asks for a later time, and
// is still the same request.
func (d *Digest) Sum(r Request) string {
	h := sha256.New()
	var b [8]byte
	for _, v := range append(d.sum[:], d.n) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	fmt.Fprintf(h, "\x00%s\x00%s\x00%t", r.Kind, r.Run, r.DeleteInUse)
	return hex.EncodeToString(h.Sum(nil))
}

// GeneratedKeyPrefix starts every generated request key.
const GeneratedKeyPrefix = "req-"

// NewKey returns a fresh key for a request given none, so every request
// can be followed and cancelled: req-<UTC time>-<128 random bits>, e.g.
// req-20261207T044435Z-p3xk…, never holding a '/'. The time only helps a
// reader; the random part alone keeps keys apart.
func NewKey(now time.Time) string {
	return GeneratedKeyPrefix + now.UTC().Format("20060102T150405Z") + "-" + strings.ToLower(rand.Text())
}

// generatedClaim is what a generated key's claim holds instead of a
// digest: a request later given that key (copied from a receipt) with
// its own digest is refused, never merged into this one.
const generatedClaim = "generated"

// claimKey records r's digest under its key, or checks it against the
// digest already there: the same key with the same request is the same
// request; with another, a KeyConflictError. A generated key is reserved,
// not checked against anything: it is new.
func claimKey(ctx context.Context, rdb redis.UniversalClient, r Request) error {
	if r.generated {
		ok, err := rdb.SetNX(ctx, keyRequest+r.Key, generatedClaim, keyTTL).Result()
		if err != nil {
			return fmt.Errorf("record request key: %w", err)
		}
		if !ok {
			// 128 random bits: only a key given earlier on purpose meets it.
			return fmt.Errorf("generated request key %q is already in use; enqueue again for a new one", r.Key)
		}
		return nil
	}
	if r.Key == "" || r.Digest == "" {
		return nil
	}
	ok, err := rdb.SetNX(ctx, keyRequest+r.Key, r.Digest, keyTTL).Result()
	if err != nil {
		return fmt.Errorf("record idempotency key: %w", err)
	}
	if ok {
		return nil
	}
	had, err := rdb.Get(ctx, keyRequest+r.Key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read idempotency key: %w", err)
	}
	if had != "" && had != r.Digest {
		return &KeyConflictError{Key: r.Key}
	}
	return nil
}
