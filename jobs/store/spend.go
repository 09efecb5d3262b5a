package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// spendTTL keeps a day's live-spend counter for two days: long enough to
// cover the whole UTC day from any time zone, short enough to vanish.
const spendTTL = 48 * time.Hour

func (s *Store) reserveLiveSpend(ctx context.Context, now time.Time, limit int64) (bool, error) {
	n, err := s.scriptInt(ctx, reserveSpendScript, []string{s.spendKey(now)}, limit, spendTTL.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("store: reserve live spend: %w", err)
	}
	return n == 1, nil
}

func (s *Store) releaseLiveSpend(ctx context.Context, reservedAt time.Time) error {
	if _, err := s.scriptInt(ctx, releaseSpendScript, []string{s.spendKey(reservedAt)}); err != nil {
		return fmt.Errorf("store: release live spend: %w", err)
	}
	return nil
}

func (s *Store) liveSpend(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.rdb.Get(ctx, s.spendKey(now)).Int64()
	if isNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: live spend: %w", err)
	}
	return n, nil
}

// MaxUnknownCallbackBytes bounds the part of an unknown callback's body
// that is kept (a longer body is truncated), so the capped list stays small.
const MaxUnknownCallbackBytes = 64 << 10

func (s *Store) recordUnknownCallback(ctx context.Context, mode refonte.Mode, raw []byte) error {
	ttl := s.opts.Retention
	if len(raw) > MaxUnknownCallbackBytes {
		raw = raw[:MaxUnknownCallbackBytes]
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, s.unknownKey(), raw)
		p.LTrim(ctx, s.unknownKey(), 0, int64(s.opts.UnknownCallbacks-1))
		p.PExpire(ctx, s.unknownKey(), ttl)
		p.Incr(ctx, s.unknownCountKey(mode))
		p.PExpire(ctx, s.unknownCountKey(mode), ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: record unknown callback: %w", err)
	}
	return nil
}

func (s *Store) unknownCallbacks(ctx context.Context, limit int) ([][]byte, error) {
	if limit <= 0 {
		return nil, nil
	}
	v, err := s.rdb.LRange(ctx, s.unknownKey(), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: unknown callbacks: %w", err)
	}
	out := make([][]byte, len(v))
	for i, x := range v {
		out[i] = []byte(x)
	}
	return out, nil
}

// UnknownCallbackCount returns how many unknown callbacks of the mode were
// recorded (kept or not) within the retention period.
func (s *Store) UnknownCallbackCount(ctx context.Context, mode refonte.Mode) (int64, error) {
	n, err := s.rdb.Get(ctx, s.unknownCountKey(mode)).Int64()
	if isNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: unknown callback count: %w", err)
	}
	return n, nil
}
