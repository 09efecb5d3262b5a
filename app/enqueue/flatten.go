package enqueue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// errFlatten reports a row that is not a JSON object (the dataset reader
// lets none through: it decoded the line first).
var errFlatten = errors.New("not a JSON object")

// flattenJSON calls fn for every leaf of the JSON object obj, in document
// order: a nested object's keys are joined to its own with dots
// ({"metadata":{"camera":"f"}} gives "metadata.camera"), like the dotted
// column names of a CSV dataset; an array or an empty object is one leaf.
// val is the leaf's JSON text as written. It scans obj in place (a
// json.Decoder costs four times as much per row): obj must be valid JSON,
// as the dataset reader's valid rows are; on anything else it returns an
// error or leaves that are not JSON (brackets are counted, not matched),
// never panics.
func flattenJSON(obj []byte, fn func(key string, val []byte)) error {
	s := flatScan{b: obj}
	s.space()
	if err := s.object("", fn); err != nil {
		return err
	}
	if s.space(); s.i != len(s.b) {
		return s.fail()
	}
	return nil
}

// flatScan is a position in a JSON text.
type flatScan struct {
	b []byte
	i int
}

func (s *flatScan) fail() error { return fmt.Errorf("%w (at byte %d)", errFlatten, s.i+1) }

func (s *flatScan) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// eat consumes c if it is next.
func (s *flatScan) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object whose keys get prefix, calling fn for its leaves.
func (s *flatScan) object(prefix string, fn func(key string, val []byte)) error {
	if !s.eat('{') {
		return s.fail()
	}
	if s.space(); s.eat('}') {
		return nil
	}
	for {
		s.space()
		key, err := s.key()
		if err != nil {
			return err
		}
		if s.space(); !s.eat(':') {
			return s.fail()
		}
		s.space()
		start := s.i
		if s.i < len(s.b) && s.b[s.i] == '{' {
			s.i++
			if s.space(); s.eat('}') {
				fn(prefix+key, s.b[start:s.i]) // an empty object is a leaf
			} else {
				s.i = start
				if err := s.object(prefix+key+".", fn); err != nil {
					return err
				}
			}
		} else {
			if err := s.skipValue(); err != nil {
				return err
			}
			fn(prefix+key, s.b[start:s.i])
		}
		s.space()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return nil
		}
		return s.fail()
	}
}

// key reads an object key (a string), unescaped.
func (s *flatScan) key() (string, error) {
	start := s.i
	if err := s.skipString(); err != nil {
		return "", err
	}
	raw := s.b[start:s.i]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var k string
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", s.fail()
	}
	return k, nil
}

// skipString moves past a string starting at the current position.
func (s *flatScan) skipString() error {
	if !s.eat('"') {
		return s.fail()
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return nil
		default:
			s.i++
		}
	}
	return s.fail()
}

// skipValue moves past any value: a string, an array or object (nested
// brackets counted, strings skipped), or a number or literal.
func (s *flatScan) skipValue() error {
	if s.i >= len(s.b) {
		return s.fail()
	}
	switch s.b[s.i] {
	case '"':
		return s.skipString()
	case '[', '{':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if err := s.skipString(); err != nil {
					return err
				}
				continue
			case '[', '{':
				depth++
			case ']', '}':
				depth--
			}
			s.i++
			if depth == 0 {
				return nil
			}
		}
		return s.fail()
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if s.i == start {
				return s.fail()
			}
			return nil
		}
		s.i++
	}
	return s.fail()
}
