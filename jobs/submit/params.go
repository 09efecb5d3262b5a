package submit

import (
	"bytes"
	"fmt"

	json "github.com/goccy/go-json"

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
// values stay raw JSON, copied as they are (exact numbers).
func buildParams(p jobs.SubmitPayload, defaultCallback string) (refonte.TaskParams, error) {
	var params refonte.TaskParams
	if body := bytes.TrimSpace(p.Params); len(body) == 0 || bytes.Equal(body, []byte("null")) {
		params = make(refonte.TaskParams, 3)
	} else {
		obj, err := rawObject(body, 3)
		if err != nil {
			return nil, fmt.Errorf("%w: params are not a JSON object: %v", jobs.ErrBadPayload, err)
		}
		params = obj
	}
	// Every decoded value is a json.RawMessage; absent ones are nil.
	cbv, _ := params[refonte.ParamCallbackURL].(json.RawMessage)
	mdv, _ := params[refonte.ParamMetadata].(json.RawMessage)
	params[refonte.ParamUniqueID] = p.UniqueID
	switch cb := callbackString(cbv); {
	case cb != "":
		params[refonte.ParamCallbackURL] = cb
	case defaultCallback != "":
		params[refonte.ParamCallbackURL] = defaultCallback
	}
	var md map[string]any
	if mdv != nil && !bytes.Equal(bytes.TrimSpace(mdv), []byte("null")) {
		var err error
		if md, err = rawObject(mdv, 1); err != nil {
			// The API wants an object; keep the row's value beside ours rather than drop it.
			md = map[string]any{"value": mdv}
		}
	}
	if md == nil {
		md = make(map[string]any, 1)
	}
	md[MetadataKey] = map[string]any{"run": p.Run, "line": p.Line}
	params[refonte.ParamMetadata] = md
	return params, nil
}

// rawObject decodes the JSON object data as json.Unmarshal into a
// map[string]json.RawMessage decodes it (every value a json.RawMessage),
// into a map with room for extra more members.
func rawObject(data []byte, extra int) (map[string]any, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	m := make(map[string]any, len(raw)+extra)
	for k, v := range raw {
		m[k] = v
	}
	return m, nil
}

// callbackString returns the string v holds, or "" if v is not a JSON
// string (then treated as absent).
func callbackString(v json.RawMessage) string {
	var cb string
	_ = json.Unmarshal(v, &cb)
	return cb
}
