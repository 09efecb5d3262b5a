package jobs

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// AppendSubmitPayload appends the JSON encoding of p to dst and returns the
// extended slice. It writes the same object as json.Marshal(p) (V defaults to
// PayloadVersion) without reflection, for the producer's hot path. p.Params
// must be a valid JSON object (as produced by json.Marshal); it is copied as
// is, and an empty Params is written as {}.
func AppendSubmitPayload(dst []byte, p SubmitPayload) []byte {
	if p.V == 0 {
		p.V = PayloadVersion
	}
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(p.V), 10)
	dst = append(dst, `,"run":`...)
	dst = appendJSONString(dst, p.Run)
	dst = append(dst, `,"line":`...)
	dst = strconv.AppendInt(dst, p.Line, 10)
	dst = append(dst, `,"unique_id":`...)
	dst = appendJSONString(dst, p.UniqueID)
	dst = append(dst, `,"task_type":`...)
	dst = appendJSONString(dst, string(p.TaskType))
	dst = append(dst, `,"mode":`...)
	dst = appendJSONString(dst, string(p.Mode))
	dst = append(dst, `,"params":`...)
	if len(p.Params) == 0 {
		dst = append(dst, `{}`...)
	} else {
		dst = append(dst, p.Params...)
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Plain printable ASCII is
// copied directly; anything else goes through encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
