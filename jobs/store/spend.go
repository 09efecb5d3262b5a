package store

import (
	"context"
	"fmt"
	"time"
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
