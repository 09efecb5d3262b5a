package dataset

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// errSlowPath makes the fast decoder hand a line over to encoding/json,
// which then either decodes it or explains what is wrong.
var errSlowPath = errors.New("dataset: use encoding/json")

const (
	maxDecodeDepth = 10000 // encoding/json's own limit
	maxKeyCache    = 512
	maxCachedKey   = 64
)

// decoder decodes one JSON object into map[string]any with the values
// encoding/json.Unmarshal would give (float64 numbers, last duplicate key
// wins), without reflection and with object keys interned. Anything it does
// not handle, including every syntax error, returns errSlowPath; the caller
// then uses json.Unmarshal, so the accepted language and the error messages
// are exactly encoding/json's. The input must be valid UTF-8.
type decoder struct {
	data    []byte
	src     string // data as a string: unescaped string values are slices of it
	plain   bool   // the last string read had no escapes: it is data[start:pos-1]
	pos     int
	depth   int
	keys    map[string]string
	scratch []byte
}

func (d *decoder) decodeObject(data []byte) (map[string]any, error) {
	d.data, d.src, d.pos, d.depth = data, string(data), 0, 0
	d.skipSpace()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return nil, errSlowPath
	}
	v, err := d.object()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, errSlowPath
	}
	return v, nil
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, errSlowPath
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		start := d.pos + 1
		b, err := d.str()
		if err != nil {
			return nil, err
		}
		if d.plain {
			// One allocation per line instead of one per string.
			return d.src[start : d.pos-1], nil
		}
		return string(b), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	default:
		return d.literal()
	}
}

func (d *decoder) literal() (any, error) {
	rest := d.data[d.pos:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		d.pos += 4
		return true, nil
	case len(rest) >= 5 && string(rest[:5]) == "false":
		d.pos += 5
		return false, nil
	case len(rest) >= 4 && string(rest[:4]) == "null":
		d.pos += 4
		return nil, nil
	}
	return nil, errSlowPath
}

func (d *decoder) object() (map[string]any, error) {
	d.depth++
	if d.depth > maxDecodeDepth {
		return nil, errSlowPath
	}
	d.pos++ // '{'
	m := make(map[string]any, d.mapHint())
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return m, nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, errSlowPath
		}
		kb, err := d.str()
		if err != nil {
			return nil, err
		}
		key := d.intern(kb)
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, errSlowPath
		}
		d.pos++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[key] = v
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, errSlowPath
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.depth--
			return m, nil
		default:
			return nil, errSlowPath
		}
	}
}

// mapHint sizes the top-level object for the params enqueue adds
// (project, batch, callback_url, instruction, unique_id).
func (d *decoder) mapHint() int {
	if d.depth == 1 {
		return 16
	}
	return 0
}

func (d *decoder) array() ([]any, error) {
	d.depth++
	if d.depth > maxDecodeDepth {
		return nil, errSlowPath
	}
	d.pos++ // '['
	a := make([]any, 0, 4)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, errSlowPath
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.depth--
			return a, nil
		default:
			return nil, errSlowPath
		}
	}
}

func (d *decoder) intern(b []byte) string {
	if s, ok := d.keys[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= maxCachedKey {
		if d.keys == nil {
			d.keys = make(map[string]string, 32)
		}
		if len(d.keys) < maxKeyCache {
			d.keys[s] = s
		}
	}
	return s
}

// str reads a string at d.pos (on its opening quote) and returns its
// unescaped bytes, valid until the next call.
func (d *decoder) str() ([]byte, error) {
	start := d.pos + 1
	i := start
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.plain = true
			return d.data[start:i], nil
		case c == '\\':
			return d.escapedStr(start, i)
		case c < 0x20:
			return nil, errSlowPath
		}
		i++
	}
	return nil, errSlowPath
}

func (d *decoder) escapedStr(start, i int) ([]byte, error) {
	b := append(d.scratch[:0], d.data[start:i]...)
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.plain = false
			d.scratch = b
			return b, nil
		case c < 0x20:
			return nil, errSlowPath
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(d.data) {
			return nil, errSlowPath
		}
		switch e := d.data[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := getu4(d.data[i:])
			if r < 0 {
				return nil, errSlowPath
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if dec := utf16.DecodeRune(r, getu4(d.data[i:])); dec != unicode.ReplacementChar {
					i += 6
					b = utf8.AppendRune(b, dec)
					continue
				}
				r = unicode.ReplacementChar
			}
			b = utf8.AppendRune(b, r)
			continue
		default:
			return nil, errSlowPath
		}
		i += 2
	}
	return nil, errSlowPath
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

func (d *decoder) number() (any, error) {
	s := d.data
	i := d.pos
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return nil, errSlowPath
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return nil, errSlowPath
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return nil, errSlowPath
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	f, err := strconv.ParseFloat(string(s[d.pos:i]), 64)
	if err != nil {
		return nil, errSlowPath
	}
	d.pos = i
	return f, nil
}

// decodeValue decodes any JSON value (a CSV ":json" cell), with
// encoding/json as the fallback and the source of error messages.
func (d *decoder) decodeValue(data []byte) (any, error) {
	d.data, d.src, d.pos, d.depth = data, string(data), 0, 0
	if v, err := d.value(); err == nil {
		d.skipSpace()
		if d.pos == len(d.data) {
			return v, nil
		}
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
	if m, err := d.decodeObject(line); err == nil {
		return m, nil
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, err
	}
	return m, nil
}
