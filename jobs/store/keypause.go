package store

// The shared record of a mode whose API key the API rejects (401): every
// worker reads it to stop submitting that mode, enqueue status shows its
// reason on the mode's runs, and the worker whose probe finds the key
// working again deletes it. Its scripts are here, beside the calls, like
// the reconciler's lease (reconcile_ext.go), so the transition scripts of
// scripts.go stay as they are.

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// KeyPause is a mode paused because the API rejected its key.
type KeyPause struct {
	// Reason says what the API answered and since when (never the key).
	Reason string `json:"reason"`
	// Since is when the first worker met the rejection.
	Since time.Time `json:"since"`
	// KeyFingerprint identifies the rejected key (ratelimit.KeyFingerprint).
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
}

func (s *Store) keyPauseKey(m refonte.Mode) string { return s.opts.Prefix + "keypause:" + string(m) }

// setKeyPauseScript records a mode's key pause unless one is recorded.
// KEYS[1] pause hash; ARGV[1] reason, ARGV[2] since ms, ARGV[3] key
// fingerprint. Returns 1 if recorded, 0 if a pause was already there.
var setKeyPauseScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'reason', ARGV[1], 'since', ARGV[2], 'fp', ARGV[3])
return 1
`)

// clearKeyPauseScript deletes a mode's key pause if it is the one since
// ARGV[1] (ms) — not a newer pause recorded after the caller looked.
// KEYS[1] pause hash. Returns 1 if deleted, else 0.
var clearKeyPauseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'since') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// PauseMode records that the API rejects mode's key, unless a pause is
// already recorded; created reports whether this call recorded it (the
// caller that did logs it and pauses the mode's queue). The record has no
// expiry: it stays until ResumeMode, so the queue it stands for is never
// left paused without it.
func (s *Store) PauseMode(ctx context.Context, mode refonte.Mode, p KeyPause) (created bool, err error) {
	n, err := s.scriptInt(ctx, setKeyPauseScript, []string{s.keyPauseKey(mode)}, p.Reason, ms(p.Since), p.KeyFingerprint)
	if err != nil {
		return false, fmt.Errorf("store: pause mode %s: %w", mode, err)
	}
	return n == 1, nil
}

// ModePause returns mode's key pause, if one is recorded.
func (s *Store) ModePause(ctx context.Context, mode refonte.Mode) (KeyPause, bool, error) {
	m, err := s.rdb.HGetAll(ctx, s.keyPauseKey(mode)).Result()
	if err != nil {
		return KeyPause{}, false, fmt.Errorf("store: read the pause of mode %s: %w", mode, err)
	}
	if len(m) == 0 {
		return KeyPause{}, false, nil
	}
	return KeyPause{Reason: m["reason"], Since: fromMS(m["since"]), KeyFingerprint: m["fp"]}, true, nil
}

// ResumeMode deletes mode's key pause p (as ModePause returned it) and
// reports whether this call deleted it; a pause recorded since is kept.
func (s *Store) ResumeMode(ctx context.Context, mode refonte.Mode, p KeyPause) (bool, error) {
	n, err := s.scriptInt(ctx, clearKeyPauseScript, []string{s.keyPauseKey(mode)}, ms(p.Since))
	if err != nil {
		return false, fmt.Errorf("store: resume mode %s: %w", mode, err)
	}
	return n == 1, nil
}
