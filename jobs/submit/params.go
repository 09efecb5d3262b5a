package submit

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// MetadataKey is the metadata key under which the handler records the run
// and line of a task: {"refonte_batch": {"run": "...", "line": 17}}.
const MetadataKey = "refonte_batch"

// buildParams returns the create body of a job: the payload's params with
// unique_id forced to the job's, callback_url defaulted to defaultCallback
// when the params have none, and metadata (an object) merged with
// MetadataKey. Numbers keep their exact text.
func buildParams(p jobs.SubmitPayload, defaultCallback string) (refonte.TaskParams, error) {
	params := refonte.TaskParams{}
	if len(bytes.TrimSpace(p.Params)) > 0 && !bytes.Equal(bytes.TrimSpace(p.Params), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(p.Params))
		dec.UseNumber()
		if err := dec.Decode(&params); err != nil {
			return nil, fmt.Errorf("%w: params are not a JSON object: %v", jobs.ErrBadPayload, err)
		}
	}
	params[refonte.ParamUniqueID] = p.UniqueID
	if cb, _ := params[refonte.ParamCallbackURL].(string); cb == "" && defaultCallback != "" {
		params[refonte.ParamCallbackURL] = defaultCallback
	}
	ours := map[string]any{"run": p.Run, "line": p.Line}
	switch md := params[refonte.ParamMetadata].(type) {
	case nil:
		params[refonte.ParamMetadata] = map[string]any{MetadataKey: ours}
	case map[string]any:
		md[MetadataKey] = ours
	default:
		// The API wants an object; keep the row's value beside ours rather than drop it.
		params[refonte.ParamMetadata] = map[string]any{MetadataKey: ours, "value": md}
	}
	return params, nil
}
