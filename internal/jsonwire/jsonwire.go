// Package jsonwire is the producer's JSON fast path, and the only
// hand-written JSON codec left in the project: the Decoder that reads
// dataset rows (JSONL lines, CSV ":json" cells) into the values
// encoding/json gives, and AppendValue/AppendObject/AppendString, which
// write the canonical JSON of those values (the content fingerprint and
// the task body of every row, jobs/dataset) and the submit payload
// (jobs.AppendSubmitPayload) byte for byte as json.Marshal does, without
// reflection. Whatever the fast path declines goes to encoding/json, so the
// accepted language and the error messages are encoding/json's; the tests
// and fuzz targets compare every function with encoding/json.
//
// It is kept because it pays for itself on the enqueue benchmark (issue
// #16), measured on 2026-12-04 by alternating cmd/enqueue binaries on one
// 200,000-row synthetic JSONL dataset (`ENQ_ROWS=200000 bench/ab.sh OLD NEW
// enqueue 3`, load average ~15 on 2 cores, so read the CPU figures):
// with this package cmd/enqueue spends 11.2 µs of CPU per row; with
// encoding/json in its place 22.9 µs (two json.Marshal calls per row)
// and with github.com/goccy/go-json v0.10.5 and one encoding per row 16.9 µs
// (12.0 on the same sitting with this package); redis-server
// spends ~18 µs per row either way. Enqueue is bound by the two processes
// sharing two cores, so encoding/json would cost about a third of the
// README's rows/s (≥ 50,000 rows/s) and goccy/go-json about a sixth.
// The reader alone: `go test -run '^$' -bench ReadJSONL -benchtime 100000x
// ./jobs/dataset` gives ~140,000 rows per CPU-second with this package,
// ~50,000 with encoding/json and ~70,000 with goccy/go-json.
package jsonwire

import (
	"math"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// htmlSafe[c] reports whether json.Marshal writes the ASCII byte c as it is
// inside a string: not a control character, '"', '\\', '<', '>' or '&'.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendString appends s to dst as a quoted JSON string, escaped exactly as
// json.Marshal escapes a string: '"' and '\\' backslash-escaped, \b \f \n
// \r \t as such, other control characters and the HTML characters <, > and
// & as \u00XX, U+2028 and U+2029 as \u2028 and \u2029, and each byte of
// invalid UTF-8 as \ufffd.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendFloat appends f to dst as json.Marshal encodes a float64 (ES6
// number formatting: exponent form below 1e-6 and from 1e21 on, with no
// leading zero in the exponent). ok is false, and dst is returned as it
// was, for NaN and the infinities, which json.Marshal refuses.
func AppendFloat(dst []byte, f float64) (_ []byte, ok bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

// SkipSpace returns the index of the first byte of b at or after i that is
// not JSON white space (space, tab, newline, carriage return), or len(b).
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// ScanNumber returns the length of the JSON number
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at the start of s, the
// longest one there, or 0 if s does not start with one.
func ScanNumber[B []byte | string](s B) int {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return 0
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		for i++; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		}
	default:
		return 0
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return 0
		}
		for i++; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return 0
		}
		for i++; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		}
	}
	return i
}
