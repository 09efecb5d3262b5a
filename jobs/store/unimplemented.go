package store

// This file holds placeholders for the methods not written yet; each is
// replaced by its implementation.

import (
	"context"
	"fmt"
	"time"

	"github.com/refonte-ai/refonte-batch/refonte"
)

func newRunID(now time.Time) string {
	return fmt.Sprintf("r%s", now.UTC().Format("20060102-150405.000000"))
}

func (s *Store) createRun(ctx context.Context, run *Run) error { return ErrNotImplemented }
func (s *Store) getRun(ctx context.Context, runID string) (*Run, error) {
	return nil, ErrNotImplemented
}
func (s *Store) listRuns(ctx context.Context, limit int) ([]*Run, error) {
	return nil, ErrNotImplemented
}
func (s *Store) addInvalid(ctx context.Context, runID string, n int64) error {
	return ErrNotImplemented
}
func (s *Store) addJobs(ctx context.Context, run *Run, jobs []NewJob) ([]AddOutcome, error) {
	return nil, ErrNotImplemented
}
func (s *Store) finishEnqueue(ctx context.Context, runID string) error { return ErrNotImplemented }
func (s *Store) abortRun(ctx context.Context, runID string, reason string) error {
	return ErrNotImplemented
}
func (s *Store) markSubmitted(ctx context.Context, mode refonte.Mode, uniqueID, taskID string) (Transition, error) {
	return Transition{}, ErrNotImplemented
}
func (s *Store) complete(ctx context.Context, mode refonte.Mode, uniqueID string, o Outcome) (Transition, error) {
	return Transition{}, ErrNotImplemented
}
func (s *Store) fail(ctx context.Context, mode refonte.Mode, uniqueID, message string) (Transition, error) {
	return Transition{}, ErrNotImplemented
}
func (s *Store) recordAttempt(ctx context.Context, mode refonte.Mode, uniqueID, lastError string) error {
	return ErrNotImplemented
}
func (s *Store) requeue(ctx context.Context, mode refonte.Mode, uniqueID string) (Transition, error) {
	return Transition{}, ErrNotImplemented
}
func (s *Store) getJob(ctx context.Context, mode refonte.Mode, uniqueID string) (*Job, error) {
	return nil, ErrNotImplemented
}
func (s *Store) uniqueIDByTaskID(ctx context.Context, mode refonte.Mode, taskID string) (string, error) {
	return "", ErrNotImplemented
}
func (s *Store) inFlightBefore(ctx context.Context, mode refonte.Mode, t time.Time, limit int) ([]string, error) {
	return nil, ErrNotImplemented
}
func (s *Store) runRows(ctx context.Context, runID string, fn func(RunRow, *Job) error) error {
	return ErrNotImplemented
}
func (s *Store) recordUnknownCallback(ctx context.Context, mode refonte.Mode, raw []byte) error {
	return ErrNotImplemented
}
func (s *Store) unknownCallbacks(ctx context.Context, limit int) ([][]byte, error) {
	return nil, ErrNotImplemented
}
func (s *Store) claimBatchFinalize(ctx context.Context, runID string) (bool, error) {
	return false, ErrNotImplemented
}
func (s *Store) setPaused(ctx context.Context, runID, reason string) error { return ErrNotImplemented }
func (s *Store) reserveLiveSpend(ctx context.Context, now time.Time, limit int64) (bool, error) {
	return false, ErrNotImplemented
}
func (s *Store) releaseLiveSpend(ctx context.Context, reservedAt time.Time) error {
	return ErrNotImplemented
}
func (s *Store) liveSpend(ctx context.Context, now time.Time) (int64, error) {
	return 0, ErrNotImplemented
}
