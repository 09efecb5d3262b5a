package testfs

import (
	"bytes"
	"compress/gzip"
	"image"
	"image/png"
	"testing"
	"unicode/utf16"
)

// PNG returns the bytes of a real 64×64 PNG image: a binary file with a
// few newlines by chance, the kind of file a dataset path can name by
// mistake.
func PNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := range img.Pix {
		img.Pix[i] = byte(i*7 + i/13)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Gzip returns b gzip-compressed.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// UTF16LE returns s encoded as UTF-16 little-endian without a byte order
// mark (as some Windows tools save text).
func UTF16LE(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}
