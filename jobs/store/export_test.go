package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// Accessors for the tests of package store_test only: the production API
// has no use for them.

// Runs returns the IDs of the runs a job's record lists (one entry per row
// that follows it).
func (s *Store) Runs(ctx context.Context, mode refonte.Mode, uniqueID string) ([]string, error) {
	v, err := s.rdb.HGet(ctx, s.jobKey(mode, uniqueID), "runs").Result()
	if isNotFound(err) {
		return nil, fmt.Errorf("%w: %s %s", ErrJobNotFound, mode, uniqueID)
	}
	if err != nil {
		return nil, fmt.Errorf("store: job runs %s: %w", uniqueID, err)
	}
	return strings.Fields(v), nil
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
