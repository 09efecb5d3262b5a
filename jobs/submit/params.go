package submit

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
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
//
// The top level is decoded as json.Unmarshal into a
// map[string]json.RawMessage would decode it (keys unescaped, the last of
// duplicate keys winning, values copied), by a reflection-free scan; what
// the scan declines goes to encoding/json itself, whose error texts are
// kept.
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
// map[string]json.RawMessage decodes it (every value a json.RawMessage
// copied out of data), into a map with room for extra more members:
// scanObject without reflection, encoding/json for what it declines (its
// error when data is not an object).
func rawObject(data []byte, extra int) (map[string]any, error) {
	if m, ok := scanObject(data, extra); ok {
		return m, nil
	}
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

// callbackString returns the string v holds, as json.Unmarshal into a
// string gives it, or "" if v is not a JSON string.
func callbackString(v json.RawMessage) string {
	if s, next, _, ok := jsonwire.ReadString(v, 0, nil); ok && next == len(v) {
		return string(s)
	}
	var cb string
	_ = json.Unmarshal(v, &cb) // not a string: treated as absent
	return cb
}

// span is where scanObject found one member: its key (quotes included)
// and its value.
type span struct{ key, keyEnd, val, valEnd int }

// maxStackMembers is how many members scanObject notes without allocating.
const maxStackMembers = 32

// scanObject decodes data, a JSON object with nothing around it, as
// json.Unmarshal into a map[string]json.RawMessage decodes it, without
// reflection, into a map with room for extra more members: each key
// unescaped, each value a json.RawMessage of its JSON, the last of
// duplicate keys winning as with encoding/json. Keys and values are slices
// of one copy of data, never data itself. It returns false if data is not
// an object or holds anything it declines (invalid JSON, invalid UTF-8 in
// a key, nesting deeper than jsonwire.MaxDepth); the caller then decodes
// with encoding/json.
func scanObject(data []byte, extra int) (map[string]any, bool) {
	if len(data) == 0 || data[0] != '{' {
		return nil, false
	}
	var stack [maxStackMembers]span
	members := stack[:0]
	escaped := false
	i := jsonwire.SkipSpace(data, 1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			key := jsonwire.SkipSpace(data, i)
			_, next, plain, ok := jsonwire.ReadString(data, key, nil)
			if !ok {
				return nil, false
			}
			escaped = escaped || !plain
			if i = jsonwire.SkipSpace(data, next); i >= len(data) || data[i] != ':' {
				return nil, false
			}
			val := jsonwire.SkipSpace(data, i+1)
			if i, ok = jsonwire.SkipValue(data, val, 1); !ok {
				return nil, false
			}
			members = append(members, span{key, next, val, i})
			if i = jsonwire.SkipSpace(data, i); i >= len(data) {
				return nil, false
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return nil, false
			}
			i++
		}
	}
	if i != len(data) {
		return nil, false
	}
	src, buf := string(data), bytes.Clone(data)
	m := make(map[string]any, len(members)+extra)
	var scratch []byte
	for _, sp := range members {
		k := src[sp.key+1 : sp.keyEnd-1]
		if escaped {
			s, _, plain, _ := jsonwire.ReadString(data, sp.key, scratch)
			if !plain {
				k, scratch = string(s), s[:0]
			}
		}
		m[k] = json.RawMessage(buf[sp.val:sp.valEnd:sp.valEnd])
	}
	return m, true
}
