package jsonwire

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSkipValue(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		next int // when ok
	}{
		{`{}`, true, 2},
		{` {"a" : [1, -2.5e+3, true, false, null, "x\"\u00e9"] } ,`, true, 54},
		{`"\ud800"`, true, 8},
		{"\"\xff\xfe\"", true, 4}, // invalid UTF-8: syntax only, as json.Valid
		{`[]`, true, 2},
		{`0`, true, 1},
		{`01`, true, 1}, // the caller sees the stray "1"
		{`-`, false, 0},
		{`1.`, false, 0},
		{`1e`, false, 0},
		{`tru`, false, 0},
		{`nul`, false, 0},
		{`{"a":1,}`, false, 0},
		{`{"a" 1}`, false, 0},
		{`{1:1}`, false, 0},
		{`[1,]`, false, 0},
		{`[1 2]`, false, 0},
		{`"a` + "\n" + `"`, false, 0},
		{`"\x"`, false, 0},
		{`"\u12g4"`, false, 0},
		{`"abc`, false, 0},
		{``, false, 0},
		{`   `, false, 0},
		{`}`, false, 0},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), true, 2 * MaxDepth},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), false, 0},
	}
	for _, tt := range tests {
		next, ok := SkipValue([]byte(tt.in), 0, 0)
		if ok != tt.ok || (ok && next != tt.next) {
			t.Errorf("SkipValue(%.40q) = %d, %v; want %d, %v", tt.in, next, ok, tt.next, tt.ok)
		}
	}
	// depth counts the enclosing containers.
	if _, ok := SkipValue([]byte(`[[]]`), 0, MaxDepth-2); !ok {
		t.Errorf("SkipValue at depth %d declined a value that reaches MaxDepth", MaxDepth-2)
	}
	if _, ok := SkipValue([]byte(`[[]]`), 0, MaxDepth-1); ok {
		t.Errorf("SkipValue at depth %d accepted a value deeper than MaxDepth", MaxDepth-1)
	}
}

func TestReadString(t *testing.T) {
	tests := []struct {
		in    string
		want  string
		plain bool
		ok    bool
	}{
		{`"abc"`, "abc", true, true},
		{`""`, "", true, true},
		{`"é"`, "é", true, true},
		{`"a\"b\\c\/d\b\f\n\r\t"`, "a\"b\\c/d\b\f\n\r\t", false, true},
		{`"\u00e9\ud83d\ude00"`, "é😀", false, true},
		{`"\ud800x"`, "\ufffdx", false, true},
		{"\"\xff\"", "", false, false},
		{`"a`, "", false, false},
		{`"\q"`, "", false, false},
		{`x`, "", false, false},
	}
	for _, tt := range tests {
		data := []byte(tt.in + ",")
		s, next, plain, ok := ReadString(data, 0, nil)
		if ok != tt.ok || (ok && (string(s) != tt.want || plain != tt.plain || next != len(tt.in))) {
			t.Errorf("ReadString(%q) = %q, %d, %v, %v; want %q, %d, %v, %v",
				tt.in, s, next, plain, ok, tt.want, len(tt.in), tt.plain, tt.ok)
		}
	}
}

// FuzzSkipValue: SkipValue accepts exactly what json.Valid accepts (but
// for nesting, which the fuzzer does not reach), and ReadString agrees
// with json.Unmarshal into a string whenever it accepts.
func FuzzSkipValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `"\ud83d\ude00"`, "\"\xff\"", `-0.5e-7`, `[true,false]`, `{"a" 1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		next, ok := SkipValue(data, 0, 0)
		whole := ok && SkipSpace(data, next) == len(data)
		if whole != json.Valid(data) {
			t.Fatalf("SkipValue(%q) = %d, %v; json.Valid = %v", data, next, ok, json.Valid(data))
		}
		i := SkipSpace(data, 0)
		s, next, plain, ok := ReadString(data, i, nil)
		if !ok || SkipSpace(data, next) != len(data) {
			return
		}
		var want string
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("ReadString(%q) accepted %q; json.Unmarshal: %v", data, s, err)
		}
		if string(s) != want || (plain && string(s) != string(data[i+1:next-1])) {
			t.Fatalf("ReadString(%q) = %q (plain %v), want %q", data, s, plain, want)
		}
	})
}
