package enqueue

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/refonte-ai/refonte-batch/jobs/control"
)

// writeCancelReport prints rep: one JSON object with asJSON, else a sentence.
func writeCancelReport(w io.Writer, rep control.CancelReport, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(rep)
	}
	_, err := fmt.Fprintf(w, "run %s: %s; %d rows canceled now without a task, %d creates in flight, %d rows left to another run, "+
		"%d tasks still open (%d cancels queued for the workers); canceled before submission %d, after %d\n",
		rep.RunID, rep.State, rep.CanceledNow, rep.InFlight, rep.Shared, rep.Submitted, rep.CancelsQueued,
		rep.CanceledBeforeSubmit, rep.CanceledAfterSubmit)
	return err
}
