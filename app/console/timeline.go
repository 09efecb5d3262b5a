package console

import (
	"context"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// TimelineInterval is how often a worker samples the runs' timelines
// (store.RecordTimelines keeps one point per minute whoever writes it).
const TimelineInterval = time.Minute

// SampleTimelines writes a timeline point of every run among the newest
// DefaultMaxRuns that may still change, and of those that ended in the
// last two intervals (so a timeline ends on the run's final counters).
func SampleTimelines(ctx context.Context, st *store.Store, now time.Time) error {
	runs, err := st.ListRuns(ctx, DefaultMaxRuns)
	if err != nil {
		return err
	}
	var sample []*store.Run
	for _, r := range runs {
		if active(r.State) || now.Sub(r.FinishedAt) <= 2*TimelineInterval {
			sample = append(sample, r)
		}
	}
	return st.RecordTimelines(ctx, sample, now)
}
