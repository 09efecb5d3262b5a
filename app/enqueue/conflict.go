package enqueue

import (
	"context"
	"fmt"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// conflictReject is the reject of a row the store refused because its
// unique_id is already recorded with other content (store.AddedConflict):
// it names the row's line and the line (and, from an earlier run, the run)
// that holds the ID. Raw is the row's task body as enqueue encoded it.
func conflictReject(ctx context.Context, st *store.Store, run *store.Run, j *store.NewJob) dataset.Reject {
	rej := dataset.Reject{Line: j.Line}
	if p, err := jobs.DecodeSubmitPayload(j.Payload); err == nil {
		raw := p.Params
		if len(raw) > dataset.RawLimit {
			raw = raw[:dataset.RawLimit]
		}
		rej.Raw = string(raw)
	}
	const fix = "a changed row needs a unique_id of its own; this row was not enqueued"
	old, err := st.GetJob(ctx, run.Mode, j.UniqueID)
	switch {
	case err != nil:
		rej.Error = fmt.Sprintf("unique_id %q: already used for different content (%v); %s", j.UniqueID, err, fix)
	case old.Run == run.ID:
		rej.Error = fmt.Sprintf("unique_id %q: same unique_id as line %d, with different content; %s", j.UniqueID, old.Line, fix)
	default:
		rej.Error = fmt.Sprintf("unique_id %q: run %s enqueued this unique_id (its line %d) with different content; %s",
			j.UniqueID, old.Run, old.Line, fix)
	}
	return rej
}
