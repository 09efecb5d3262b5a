package store

// Small additions for the reconciler (package jobs/reconcile): moving an
// in-flight job's reconciliation time and a short per-pass lease so that
// several worker pods do not all poll the same jobs at once.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// DeferInFlight moves an in-flight job's reconciliation time to at: the
// reconciler calls it for a task the API still reports pending, so the job
// is polled again only after another grace period. It never adds a job
// that is no longer in flight (a callback that completed it meanwhile wins)
// and reports whether the job was still there.
func (s *Store) DeferInFlight(ctx context.Context, mode refonte.Mode, uniqueID string, at time.Time) (bool, error) {
	n, err := s.rdb.ZAddArgs(ctx, s.inflightKey(mode), redis.ZAddArgs{
		XX:      true,
		Ch:      true,
		Members: []redis.Z{{Score: float64(ms(at)), Member: uniqueID}},
	}).Result()
	if err != nil {
		return false, fmt.Errorf("store: defer in-flight %s: %w", uniqueID, err)
	}
	if n > 0 {
		return true, nil
	}
	// ZADD XX CH counts 0 both for an absent member and for an unchanged
	// score; tell them apart.
	_, err = s.rdb.ZScore(ctx, s.inflightKey(mode), uniqueID).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: defer in-flight %s: %w", uniqueID, err)
	}
	return true, nil
}

// DropInFlight removes a unique_id from the in-flight set without touching
// its job record: for an entry whose job record expired or is already
// terminal.
func (s *Store) DropInFlight(ctx context.Context, mode refonte.Mode, uniqueID string) error {
	if err := s.rdb.ZRem(ctx, s.inflightKey(mode), uniqueID).Err(); err != nil {
		return fmt.Errorf("store: drop in-flight %s: %w", uniqueID, err)
	}
	return nil
}

// unlockScript deletes a lease only if it still holds the caller's token.
// KEYS[1] lease key; ARGV[1] token. Returns 1 if deleted, else 0.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// renewScript extends a lease only if it still holds the caller's token.
// KEYS[1] lease key; ARGV[1] token, ARGV[2] TTL ms. Returns 1 if renewed, else 0.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

func (s *Store) leaseKey(name string) string { return s.opts.Prefix + "lease:" + name }

// TryLease takes the short lease name for ttl if nobody holds it (SET NX
// PX) and returns the token that releases it; ok is false when another
// holder has it. A lease is advisory: it only keeps concurrent holders from
// duplicating work, so an expired lease never breaks correctness.
func (s *Store) TryLease(ctx context.Context, name string, ttl time.Duration) (token string, ok bool, err error) {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	token = hex.EncodeToString(b[:])
	ok, err = s.rdb.SetNX(ctx, s.leaseKey(name), token, ttl).Result()
	if err != nil {
		return "", false, fmt.Errorf("store: lease %s: %w", name, err)
	}
	if !ok {
		return "", false, nil
	}
	return token, true, nil
}

// ReleaseLease releases a lease taken by TryLease, if token still holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, token string) error {
	if err := unlockScript.Run(ctx, s.rdb, []string{s.leaseKey(name)}, token).Err(); err != nil {
		return fmt.Errorf("store: release lease %s: %w", name, err)
	}
	return nil
}

// RenewLease extends a lease taken by TryLease to ttl from now, if token
// still holds it; ok is false when the lease was lost (expired, or taken
// by another holder since).
func (s *Store) RenewLease(ctx context.Context, name, token string, ttl time.Duration) (ok bool, err error) {
	n, err := renewScript.Run(ctx, s.rdb, []string{s.leaseKey(name)}, token, ttl.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("store: renew lease %s: %w", name, err)
	}
	return n == 1, nil
}
