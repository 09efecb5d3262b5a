package store

import (
	"context"
	"fmt"
	"time"
)

// spendTTL keeps a day's live-spend counter for two days: long enough to
// cover the whole UTC day from any time zone, short enough to vanish.
const spendTTL = 48 * time.Hour

// ReserveLiveSpend atomically reserves one live task under the daily cap of
// the UTC day of now: it returns true and counts it if the day's count is
// below limit (limit <= 0 means no cap), else false and counts nothing.
func (s *Store) ReserveLiveSpend(ctx context.Context, now time.Time, limit int64) (bool, error) {
	n, err := s.scriptInt(ctx, reserveSpendScript, []string{s.spendKey(now)}, limit, spendTTL.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("store: reserve live spend: %w", err)
	}
	return n == 1, nil
}

// ReleaseLiveSpend gives back one reservation of the UTC day of reservedAt
// (the create failed permanently, so no task was billed).
func (s *Store) ReleaseLiveSpend(ctx context.Context, reservedAt time.Time) error {
	if _, err := s.scriptInt(ctx, releaseSpendScript, []string{s.spendKey(reservedAt)}); err != nil {
		return fmt.Errorf("store: release live spend: %w", err)
	}
	return nil
}

// LiveSpend returns the live tasks counted for the UTC day of now.
func (s *Store) LiveSpend(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.rdb.Get(ctx, s.spendKey(now)).Int64()
	if isNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: live spend: %w", err)
	}
	return n, nil
}
