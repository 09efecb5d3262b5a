package jsonwire

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestAppendString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `""`},
		{"plain", "hello world", `"hello world"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"short escapes", "\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"other controls", "\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"html", "<a href='x'>&</a>", `"\u003ca href='x'\u003e\u0026\u003c/a\u003e"`},
		{"slash kept", "a/b", `"a/b"`},
		{"multibyte", "héllo, 世界 🌍", `"héllo, 世界 🌍"`},
		{"line separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"invalid byte", "a\xffb", `"a\ufffdb"`},
		{"truncated rune", "\xe4\xb8", `"\ufffd\ufffd"`},
		{"surrogate half", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"valid replacement char", "\ufffd", "\"\ufffd\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendString([]byte("prefix"), tt.in)
			if string(got) != "prefix"+tt.want {
				t.Errorf("AppendString(%q) = %s, want %s", tt.in, got[len("prefix"):], tt.want)
			}
			std, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(std) != tt.want {
				t.Errorf("json.Marshal(%q) = %s, table says %s", tt.in, std, tt.want)
			}
		})
	}
}

func TestAppendFloat(t *testing.T) {
	tests := []struct {
		in     float64
		want   string
		wantOK bool
	}{
		{0, "0", true},
		{math.Copysign(0, -1), "-0", true},
		{1, "1", true},
		{-2.5, "-2.5", true},
		{0.1, "0.1", true},
		{1e-6, "0.000001", true},
		{1e-7, "1e-7", true},
		{1.5e-9, "1.5e-9", true},
		{1e-10, "1e-10", true},
		{1e20, "100000000000000000000", true},
		{1e21, "1e+21", true},
		{-1e300, "-1e+300", true},
		{math.MaxFloat64, "1.7976931348623157e+308", true},
		{math.SmallestNonzeroFloat64, "5e-324", true},
		{math.NaN(), "", false},
		{math.Inf(1), "", false},
		{math.Inf(-1), "", false},
	}
	for _, tt := range tests {
		got, ok := AppendFloat([]byte("x"), tt.in)
		if ok != tt.wantOK || string(got) != "x"+tt.want {
			t.Errorf("AppendFloat(%v) = %q, %v; want %q, %v", tt.in, got, ok, "x"+tt.want, tt.wantOK)
		}
		if !tt.wantOK {
			continue
		}
		std, err := json.Marshal(tt.in)
		if err != nil || string(std) != tt.want {
			t.Errorf("json.Marshal(%v) = %s, %v; table says %s", tt.in, std, err, tt.want)
		}
	}
}

func TestSkipSpace(t *testing.T) {
	tests := []struct {
		in   string
		from int
		want int
	}{
		{"", 0, 0},
		{"x", 0, 0},
		{" \t\r\nx", 0, 4},
		{"   ", 1, 3},
		{"a \v", 1, 2}, // vertical tab is not JSON white space
		{"a\u00a0", 1, 1},
	}
	for _, tt := range tests {
		if got := SkipSpace([]byte(tt.in), tt.from); got != tt.want {
			t.Errorf("SkipSpace(%q, %d) = %d, want %d", tt.in, tt.from, got, tt.want)
		}
	}
}

func TestScanNumber(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"-", 0},
		{"0", 1},
		{"-0", 2},
		{"01", 1},
		{"123,", 3},
		{"1.5", 3},
		{"1.", 0},
		{".5", 0},
		{"1e5", 3},
		{"1E+05]", 5},
		{"1e-", 0},
		{"1e", 0},
		{"-12.34e-56}", 10},
		{"+1", 0},
		{"a", 0},
	}
	for _, tt := range tests {
		if got := ScanNumber(tt.in); got != tt.want {
			t.Errorf("ScanNumber(%q) = %d, want %d", tt.in, got, tt.want)
		}
		if got := ScanNumber([]byte(tt.in)); got != tt.want {
			t.Errorf("ScanNumber([]byte(%q)) = %d, want %d", tt.in, got, tt.want)
		}
		// A whole number literal is what json.Valid accepts.
		if tt.want > 0 && strings.TrimSpace(tt.in[tt.want:]) == "" != json.Valid([]byte(tt.in)) {
			t.Errorf("ScanNumber(%q) = %d disagrees with json.Valid", tt.in, tt.want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\x1f\x7f", "<>&", "\u2028\u2029", "\xff", "\xed\xa0\x80", "世界", "\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, json.Marshal = %s", s, got, want)
		}
	})
}

func FuzzAppendFloat(f *testing.F) {
	for _, x := range []float64{0, 1, -1.5, 1e-7, 1e21, 123456789.125, math.NaN()} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float64) {
		want, err := json.Marshal(x)
		got, ok := AppendFloat(nil, x)
		if ok != (err == nil) || string(got) != string(want) {
			t.Fatalf("AppendFloat(%v) = %s, %v; json.Marshal = %s, %v", x, got, ok, want, err)
		}
	})
}

func TestAppendValueMatchesMarshal(t *testing.T) {
	for _, v := range []any{
		nil, true, false, 0.0, -1.5, 1e21, 1e-7, "", "a<b>&\"\\\u2028é\x00",
		[]any{}, []any{1.0, "x", nil, []any{true}},
		map[string]any{}, map[string]any{"b": 1.0, "a": map[string]any{"z": "y", "é": []any{}}, "": nil},
		map[string]int{"other": 1}, // not a Decoder value: json.Marshal
	} {
		want, _ := json.Marshal(v)
		got, err := AppendValue([]byte("x"), v)
		if err != nil || string(got) != "x"+string(want) {
			t.Errorf("AppendValue(%#v) = %s, %v; want x%s", v, got, err, want)
		}
	}
	m := map[string]any{"keep": 1.0, "drop": 2.0, "also": 3.0}
	if got, err := AppendObject(nil, m, "drop", "also"); err != nil || string(got) != `{"keep":1}` {
		t.Errorf("AppendObject omitting drop, also = %s, %v", got, err)
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), []any{math.Inf(-1)}, map[string]any{"a": math.NaN()}} {
		if _, err := AppendValue(nil, bad); err == nil {
			t.Errorf("AppendValue(%v): no error", bad)
		}
	}
}
