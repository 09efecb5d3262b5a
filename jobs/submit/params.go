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
// MetadataKey. Only the top level (and metadata's) is decoded: the other
// values stay raw JSON, copied as they are (exact numbers, no reflection
// over nested objects on the hot path).
func buildParams(p jobs.SubmitPayload, defaultCallback string) (refonte.TaskParams, error) {
	var raw map[string]json.RawMessage
	if body := bytes.TrimSpace(p.Params); len(body) > 0 && !bytes.Equal(body, []byte("null")) {
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fmt.Errorf("%w: params are not a JSON object: %v", jobs.ErrBadPayload, err)
		}
	}
	params := make(refonte.TaskParams, len(raw)+3)
	for k, v := range raw {
		params[k] = v
	}
	params[refonte.ParamUniqueID] = p.UniqueID
	var cb string
	if v, ok := raw[refonte.ParamCallbackURL]; ok {
		_ = json.Unmarshal(v, &cb) // not a string: treated as absent
	}
	switch {
	case cb != "":
		params[refonte.ParamCallbackURL] = cb
	case defaultCallback != "":
		params[refonte.ParamCallbackURL] = defaultCallback
	}
	ours := map[string]any{"run": p.Run, "line": p.Line}
	md := map[string]any{}
	if v, ok := raw[refonte.ParamMetadata]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err == nil {
			for k, x := range obj {
				md[k] = x
			}
		} else {
			// The API wants an object; keep the row's value beside ours rather than drop it.
			md["value"] = v
		}
	}
	md[MetadataKey] = ours
	params[refonte.ParamMetadata] = md
	return params, nil
}
