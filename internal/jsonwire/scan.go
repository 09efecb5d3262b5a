package jsonwire

// syntaxStop[c] is true for the bytes that end SkipString's quick scan:
// '"', '\\' and the control characters.
var syntaxStop = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < 0x20
	}
	return t
}()

// ReadString reads the JSON string whose opening quote is data[i] and
// returns its value unescaped as encoding/json unescapes it, and the index
// just past its closing quote. It is the Decoder's own string reader: it
// declines (ok false) every invalid string, and also invalid UTF-8 inside
// the string (which encoding/json replaces by U+FFFD), so that the caller
// falls back to encoding/json.
//
// If plain is true the string had no escapes and s is data[i+1:next-1]
// itself; otherwise s is built in scratch's storage (appended to
// scratch[:0]), which the caller may pass again to reuse.
func ReadString(data []byte, i int, scratch []byte) (s []byte, next int, plain, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, i, false, false
	}
	d := Decoder{data: data, pos: i, scratch: scratch}
	s, ok = d.str()
	if !ok {
		return nil, i, false, false
	}
	return s, d.pos, d.plain, true
}

// SkipString returns the index just past the JSON string whose opening
// quote is data[i]. It accepts exactly the strings encoding/json's syntax
// check accepts: any bytes but '"', '\\' and the control characters, and
// the escapes \" \\ \/ \b \f \n \r \t and \u with four hex digits. Like
// encoding/json's syntax check, and unlike ReadString, it does not look at
// UTF-8 (json.RawMessage keeps invalid UTF-8 as it is). ok is false if
// data[i:] does not start with such a string.
func SkipString(data []byte, i int) (next int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return i, false
	}
	for i++; i < len(data); i++ {
		c := data[i]
		if !syntaxStop[c] {
			continue
		}
		switch {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		}
		// c == '\\'
		if i+1 >= len(data) {
			return i, false
		}
		switch data[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i++
		case 'u':
			if getu4(data[i:]) < 0 {
				return i, false
			}
			i += 5
		default:
			return i, false
		}
	}
	return i, false
}

// SkipValue returns the index just past the JSON value that starts at
// data[i] after optional white space. It accepts exactly what
// encoding/json's syntax check (json.Valid) accepts as a value, byte for
// byte (strings as SkipString), except nesting deeper than MaxDepth in all:
// depth is the number of objects and arrays that enclose the value in the
// whole document, so that a value encoding/json would reject as too deep is
// declined. ok is false for anything else; the caller then falls back to
// encoding/json, which explains.
//
// The value is data[start:next], with start the index of its first byte
// (SkipSpace(data, i)): that is what encoding/json stores in a
// json.RawMessage.
func SkipValue(data []byte, i, depth int) (next int, ok bool) {
	i = SkipSpace(data, i)
	if i >= len(data) {
		return i, false
	}
	switch c := data[i]; {
	case c == '"':
		return SkipString(data, i)
	case c == '{':
		return skipContainer(data, i, depth+1, '}')
	case c == '[':
		return skipContainer(data, i, depth+1, ']')
	case c == '-' || ('0' <= c && c <= '9'):
		n := ScanNumber(data[i:])
		return i + n, n > 0
	case c == 't':
		return skipLiteral(data, i, "true")
	case c == 'f':
		return skipLiteral(data, i, "false")
	case c == 'n':
		return skipLiteral(data, i, "null")
	}
	return i, false
}

func skipLiteral(data []byte, i int, word string) (int, bool) {
	if len(data)-i < len(word) || string(data[i:i+len(word)]) != word {
		return i, false
	}
	return i + len(word), true
}

// skipContainer skips the object or array at data[i] ('{' or '['), which
// is at nesting depth depth (1 for a top-level one); end is its closing
// byte ('}' or ']'), and an object's members are a key and a colon before
// each value.
func skipContainer(data []byte, i, depth int, end byte) (int, bool) {
	if depth > MaxDepth {
		return i, false
	}
	i = SkipSpace(data, i+1)
	if i < len(data) && data[i] == end {
		return i + 1, true
	}
	for {
		var ok bool
		if end == '}' {
			if i, ok = SkipString(data, SkipSpace(data, i)); !ok {
				return i, false
			}
			if i = SkipSpace(data, i); i >= len(data) || data[i] != ':' {
				return i, false
			}
			i++
		}
		if i, ok = SkipValue(data, i, depth); !ok {
			return i, false
		}
		if i = SkipSpace(data, i); i >= len(data) {
			return i, false
		}
		switch data[i] {
		case ',':
			i++
		case end:
			return i + 1, true
		default:
			return i, false
		}
	}
}
