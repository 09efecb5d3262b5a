package jobs

import (
	"encoding/json"

	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// The members of a SubmitPayload, as bits of the set decodeSubmitFast has seen.
const (
	fieldV = 1 << iota
	fieldRun
	fieldLine
	fieldUniqueID
	fieldTaskType
	fieldMode
	fieldParams
)

// submitField returns the bit of the member named key (its exact JSON
// name), or 0 for any other name.
func submitField(key []byte) int {
	switch string(key) {
	case "v":
		return fieldV
	case "run":
		return fieldRun
	case "line":
		return fieldLine
	case "unique_id":
		return fieldUniqueID
	case "task_type":
		return fieldTaskType
	case "mode":
		return fieldMode
	case "params":
		return fieldParams
	}
	return 0
}

// decodeSubmitFast decodes b as json.Unmarshal(b, &p) does, without
// reflection, when b is in the common shape: one object whose keys are
// each of SubmitPayload's JSON names at most once, spelled exactly and
// without escapes, with integers for v and line, strings for the string
// members and any JSON value for params. Members may come in any order or
// be missing, with any white space. ok is false for anything else (unknown,
// duplicate or case-folded keys, null, fractions, out-of-range numbers,
// invalid UTF-8 in strings, invalid JSON...), which the caller decodes
// with encoding/json so that its semantics and error texts stay exactly
// those of encoding/json.
func decodeSubmitFast(b []byte) (p SubmitPayload, ok bool) {
	i := jsonwire.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return p, false
	}
	if i = jsonwire.SkipSpace(b, i+1); i < len(b) && b[i] == '}' {
		return p, jsonwire.SkipSpace(b, i+1) == len(b)
	}
	var seen int
	var scratch []byte
	for {
		key, next, plain, ok := jsonwire.ReadString(b, jsonwire.SkipSpace(b, i), nil)
		if !ok || !plain {
			return p, false
		}
		field := submitField(key)
		if field == 0 || seen&field != 0 {
			return p, false
		}
		seen |= field
		if i = jsonwire.SkipSpace(b, next); i >= len(b) || b[i] != ':' {
			return p, false
		}
		i = jsonwire.SkipSpace(b, i+1)
		switch field {
		case fieldV:
			var n int64
			// int64(int(n)) == n: V's range is int's, as for encoding/json.
			if n, i, ok = readInt(b, i); !ok || int64(int(n)) != n {
				return p, false
			}
			p.V = int(n)
		case fieldLine:
			if p.Line, i, ok = readInt(b, i); !ok {
				return p, false
			}
		case fieldParams:
			start := i
			if i, ok = jsonwire.SkipValue(b, i, 1); !ok {
				return p, false
			}
			// A copy, as json.RawMessage.UnmarshalJSON makes.
			p.Params = append(json.RawMessage(nil), b[start:i]...)
		default:
			var s []byte
			var plain bool
			if s, i, plain, ok = jsonwire.ReadString(b, i, scratch); !ok {
				return p, false
			}
			switch field {
			case fieldRun:
				p.Run = string(s)
			case fieldUniqueID:
				p.UniqueID = string(s)
			case fieldTaskType:
				p.TaskType = refonte.TaskType(s)
			case fieldMode:
				p.Mode = internMode(s)
			}
			if !plain {
				scratch = s[:0] // ours: reuse it for the next escaped string
			}
		}
		if i = jsonwire.SkipSpace(b, i); i >= len(b) {
			return p, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return p, jsonwire.SkipSpace(b, i+1) == len(b)
		default:
			return p, false
		}
	}
}

// internMode returns the Mode spelled s, without allocating for the two
// known modes.
func internMode(s []byte) refonte.Mode {
	switch string(s) {
	case string(refonte.ModeTest):
		return refonte.ModeTest
	case string(refonte.ModeLive):
		return refonte.ModeLive
	}
	return refonte.Mode(s)
}

// maxIntDigits is the most digits readInt takes: any 18-digit integer fits
// in an int64.
const maxIntDigits = 18

// readInt reads the JSON integer -?(0|[1-9][0-9]*) at b[i] of at most
// maxIntDigits digits, as encoding/json decodes a number into an int64
// field. ok is false for anything else, including a fraction or an
// exponent (which encoding/json refuses for an integer field) and longer
// integers (which may be out of range): encoding/json then decides.
func readInt(b []byte, i int) (n int64, next int, ok bool) {
	size := jsonwire.ScanNumber(b[i:])
	if size == 0 {
		return 0, i, false
	}
	num := b[i : i+size]
	neg := num[0] == '-'
	if neg {
		num = num[1:]
	}
	if len(num) > maxIntDigits {
		return 0, i, false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, i, false // fraction or exponent
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, i + size, true
}
