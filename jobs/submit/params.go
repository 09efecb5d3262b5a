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
	var (
		params       refonte.TaskParams
		cbv, mdv     json.RawMessage
		hasCB, hasMD bool
	)
	body := bytes.TrimSpace(p.Params)
	switch {
	case len(body) == 0 || bytes.Equal(body, []byte("null")):
		params = make(refonte.TaskParams, 3)
	case scanObject(body, func(n int) { params = make(refonte.TaskParams, n+3) },
		func(k string, v json.RawMessage) {
			params[k] = v
			switch k {
			case refonte.ParamCallbackURL:
				cbv, hasCB = v, true
			case refonte.ParamMetadata:
				mdv, hasMD = v, true
			}
		}):
		// The fast scan took it: params, cbv and mdv are set.
	default:
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fmt.Errorf("%w: params are not a JSON object: %v", jobs.ErrBadPayload, err)
		}
		params = make(refonte.TaskParams, len(raw)+3)
		for k, v := range raw {
			params[k] = v
		}
		cbv, hasCB = raw[refonte.ParamCallbackURL]
		mdv, hasMD = raw[refonte.ParamMetadata]
	}
	params[refonte.ParamUniqueID] = p.UniqueID
	var cb string
	if hasCB {
		cb = callbackString(cbv)
	}
	switch {
	case cb != "":
		params[refonte.ParamCallbackURL] = cb
	case defaultCallback != "":
		params[refonte.ParamCallbackURL] = defaultCallback
	}
	ours := map[string]any{"run": p.Run, "line": p.Line}
	var md map[string]any
	if hasMD && !bytes.Equal(bytes.TrimSpace(mdv), []byte("null")) {
		if !scanObject(mdv, func(n int) { md = make(map[string]any, n+1) },
			func(k string, x json.RawMessage) { md[k] = x }) {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(mdv, &obj); err == nil {
				md = make(map[string]any, len(obj)+1)
				for k, x := range obj {
					md[k] = x
				}
			} else {
				// The API wants an object; keep the row's value beside ours rather than drop it.
				md = map[string]any{"value": mdv}
			}
		}
	}
	if md == nil {
		md = make(map[string]any, 1)
	}
	md[MetadataKey] = ours
	params[refonte.ParamMetadata] = md
	return params, nil
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
// reflection: it calls size with the number of members, then put for each
// member in order (so that storing them in a map keeps the last of
// duplicate keys, as encoding/json does), the key unescaped and the value
// the bytes of its JSON. Keys and values are slices of one copy of data,
// never data itself. It returns false, calling neither, if data is not an
// object or holds anything it declines (invalid JSON, invalid UTF-8 in a
// key, nesting deeper than jsonwire.MaxDepth); the caller then decodes
// with encoding/json.
func scanObject(data []byte, size func(n int), put func(k string, v json.RawMessage)) bool {
	if len(data) == 0 || data[0] != '{' {
		return false
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
				return false
			}
			escaped = escaped || !plain
			if i = jsonwire.SkipSpace(data, next); i >= len(data) || data[i] != ':' {
				return false
			}
			val := jsonwire.SkipSpace(data, i+1)
			if i, ok = jsonwire.SkipValue(data, val, 1); !ok {
				return false
			}
			members = append(members, span{key, next, val, i})
			if i = jsonwire.SkipSpace(data, i); i >= len(data) {
				return false
			}
			if data[i] == '}' {
				i++
				break
			}
			if data[i] != ',' {
				return false
			}
			i++
		}
	}
	if i != len(data) {
		return false
	}
	src, buf := string(data), bytes.Clone(data)
	size(len(members))
	var scratch []byte
	for _, m := range members {
		k := src[m.key+1 : m.keyEnd-1]
		if escaped {
			s, _, plain, _ := jsonwire.ReadString(data, m.key, scratch)
			if !plain {
				k, scratch = string(s), s[:0]
			}
		}
		put(k, buf[m.val:m.valEnd:m.valEnd])
	}
	return true
}
