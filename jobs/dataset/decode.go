package dataset

import (
	"encoding/json"
	"errors"

	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
)

// errSlowPath makes the fast decoder hand a line over to encoding/json,
// which then either decodes it or explains what is wrong.
var errSlowPath = errors.New("dataset: use encoding/json")

// decoder decodes JSONL lines and ":json" CSV cells with the values
// encoding/json.Unmarshal would give (float64 numbers, last duplicate key
// wins): jsonwire.Decoder for the common case, with object keys interned
// across lines, and json.Unmarshal for the rest, so the accepted language
// and the error messages are exactly encoding/json's.
type decoder struct {
	fast jsonwire.Decoder
}

// jsonwireDecoder returns d's fast decoder, set up for dataset rows.
func (d *decoder) jsonwireDecoder() *jsonwire.Decoder {
	// The top-level hint sizes the map for the params enqueue adds
	// (project, batch, callback_url, instruction, unique_id).
	d.fast.InternKeys, d.fast.ObjectSizeHint = true, 16
	return &d.fast
}

// decodeObject is the fast path alone: errSlowPath for anything it does
// not handle.
func (d *decoder) decodeObject(data []byte) (map[string]any, error) {
	if m, ok := d.jsonwireDecoder().DecodeObject(data); ok {
		return m, nil
	}
	return nil, errSlowPath
}

// decodeValue decodes any JSON value (a CSV ":json" cell), with
// encoding/json as the fallback and the source of error messages.
func (d *decoder) decodeValue(data []byte) (any, error) {
	if v, ok := d.jsonwireDecoder().DecodeValue(data); ok {
		return v, nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeLine decodes a JSONL line: the fast decoder, or encoding/json for
// anything else (which also gives the error message).
func (d *decoder) decodeLine(line []byte) (map[string]any, error) {
	if m, ok := d.jsonwireDecoder().DecodeObject(line); ok {
		return m, nil
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, err
	}
	return m, nil
}
