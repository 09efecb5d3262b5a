package jsonwire

import (
	"encoding/json"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays the Decoder
// follows: encoding/json's own limit, so that deeper input gets
// encoding/json's error from the caller's fallback.
const MaxDepth = 10000

const (
	maxKeyCache  = 512 // interned keys kept by a Decoder
	maxCachedKey = 64  // longest key interned
)

// strStop[c] is true for the bytes that end the quick scan of a string:
// '"', '\\', the control characters and the non-ASCII bytes (which are
// checked as UTF-8).
var strStop = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf
	}
	return t
}()

// Decoder is a fast, reflection-free decoder of JSON into the values
// encoding/json decodes into an any: map[string]any, []any, string,
// float64, bool and nil.
//
// Its fast path handles the common case only and declines the rest,
// including every invalid input, invalid UTF-8 inside strings (which
// encoding/json replaces by U+FFFD) and nesting deeper than MaxDepth,
// which Object and Value then decode with encoding/json: the accepted
// language and the error messages are exactly encoding/json's, and
// whatever the fast path accepts decodes to a value equal to
// encoding/json's (last duplicate key wins).
//
// Strings without escapes are slices of one string copy of the input made
// per call, so the whole input stays alive as long as any of them does.
//
// The zero Decoder behaves like json.Unmarshal. A Decoder keeps buffers
// (and interned keys) between calls; it is not safe for concurrent use.
type Decoder struct {
	// InternKeys makes object keys come from a cache kept by the Decoder
	// (at most 512 keys of up to 64 bytes), so that the maps of many
	// calls share their key strings. Without it, keys are slices of the
	// input like the other strings.
	InternKeys bool
	// ObjectSizeHint, if positive, is the size hint of the map made for
	// the top-level object.
	ObjectSizeHint int

	data    []byte
	src     string // data as a string: unescaped strings are slices of it
	plain   bool   // the last string read had no escapes: it is src[start:pos-1]
	pos     int
	depth   int
	keys    map[string]string
	scratch []byte
}

// Object decodes data, a JSON object, as json.Unmarshal decodes it into a
// map[string]any, and fails with json.Unmarshal's error.
func (d *Decoder) Object(data []byte) (map[string]any, error) {
	if m, ok := d.fastObject(data); ok {
		return m, nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Value decodes data, any JSON value, as json.Unmarshal decodes it into an
// any, and fails with json.Unmarshal's error.
func (d *Decoder) Value(data []byte) (any, error) {
	if v, ok := d.fastValue(data); ok {
		return v, nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// fastObject is Object's fast path: ok is false if data does not hold an
// object or holds anything it declines.
func (d *Decoder) fastObject(data []byte) (m map[string]any, ok bool) {
	d.reset(data)
	d.skipSpace()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return nil, false
	}
	if m, ok = d.object(); !ok || !d.end() {
		return nil, false
	}
	return m, true
}

// fastValue is Value's fast path: ok is false for anything it declines.
func (d *Decoder) fastValue(data []byte) (v any, ok bool) {
	d.reset(data)
	if v, ok = d.value(); !ok || !d.end() {
		return nil, false
	}
	return v, true
}

func (d *Decoder) reset(data []byte) {
	d.data, d.src, d.pos, d.depth = data, string(data), 0, 0
}

// end reports whether only white space follows the value just read.
func (d *Decoder) end() bool {
	d.skipSpace()
	return d.pos == len(d.data)
}

func (d *Decoder) skipSpace() { d.pos = SkipSpace(d.data, d.pos) }

func (d *Decoder) value() (any, bool) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, false
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		start := d.pos + 1
		b, ok := d.str()
		if !ok {
			return nil, false
		}
		if d.plain {
			// One allocation per call instead of one per string.
			return d.src[start : d.pos-1], true
		}
		return string(b), true
	case c == '-' || ('0' <= c && c <= '9'):
		return d.number()
	case c == 't':
		return d.literal("true", true)
	case c == 'f':
		return d.literal("false", false)
	case c == 'n':
		return d.literal("null", nil)
	}
	return nil, false
}

func (d *Decoder) literal(word string, v any) (any, bool) {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return nil, false
	}
	d.pos += len(word)
	return v, true
}

func (d *Decoder) number() (any, bool) {
	n := ScanNumber(d.data[d.pos:])
	if n == 0 {
		return nil, false
	}
	s := d.src[d.pos : d.pos+n]
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, false // out of range: encoding/json explains
	}
	d.pos += n
	return f, true
}

func (d *Decoder) object() (map[string]any, bool) {
	d.depth++
	if d.depth > MaxDepth {
		return nil, false
	}
	d.pos++ // '{'
	hint := 0
	if d.depth == 1 {
		hint = d.ObjectSizeHint
	}
	m := make(map[string]any, hint)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return m, true
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, false
		}
		start := d.pos + 1
		kb, ok := d.str()
		if !ok {
			return nil, false
		}
		var key string
		switch {
		case d.InternKeys:
			key = d.intern(kb)
		case d.plain:
			key = d.src[start : d.pos-1]
		default:
			key = string(kb)
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, false
		}
		d.pos++
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		m[key] = v
		more, ok := d.next('}')
		if !ok {
			return nil, false
		}
		if !more {
			return m, true
		}
	}
}

// next reads what follows a member of an object or an element of an array:
// a comma (more: true) or the closing byte end, which ends the value and
// its depth (more: false); anything else is not JSON (ok: false).
func (d *Decoder) next(end byte) (more, ok bool) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return false, false
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		return true, true
	case end:
		d.pos++
		d.depth--
		return false, true
	}
	return false, false
}

func (d *Decoder) array() ([]any, bool) {
	d.depth++
	if d.depth > MaxDepth {
		return nil, false
	}
	d.pos++ // '['
	a := make([]any, 0, 4)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return a, true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		more, ok := d.next(']')
		if !ok {
			return nil, false
		}
		if !more {
			return a, true
		}
	}
}

func (d *Decoder) intern(b []byte) string {
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
// unescaped bytes, valid until the next call; d.plain tells whether they
// are data itself (no escapes).
func (d *Decoder) str() ([]byte, bool) {
	start := d.pos + 1
	for i := start; i < len(d.data); i++ {
		c := d.data[i]
		if !strStop[c] {
			continue
		}
		switch {
		case c == '"':
			d.pos = i + 1
			d.plain = true
			return d.data[start:i], true
		case c == '\\':
			return d.escapedStr(start, i)
		case c < 0x20:
			return nil, false
		}
		size := runeSize(d.data[i:])
		if size == 0 {
			return nil, false
		}
		i += size - 1
	}
	return nil, false
}

// runeSize returns the length of the valid UTF-8 encoding at the start of
// b, or 0 if there is none.
func runeSize(b []byte) int {
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError && size <= 1 {
		return 0
	}
	return size
}

// escapedStr reads the rest of a string whose first escape is at i.
func (d *Decoder) escapedStr(start, i int) ([]byte, bool) {
	b := append(d.scratch[:0], d.data[start:i]...)
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.plain = false
			d.scratch = b
			return b, true
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			size := runeSize(d.data[i:])
			if size == 0 {
				return nil, false
			}
			b = append(b, d.data[i:i+size]...)
			i += size
			continue
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(d.data) {
			return nil, false
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
				return nil, false
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
			return nil, false
		}
		i += 2
	}
	return nil, false
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
