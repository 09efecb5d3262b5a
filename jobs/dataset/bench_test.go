package dataset

import (
	"bytes"
	"io"
	"testing"

	"github.com/refonte-ai/refonte-batch/refonte"
)

func benchmarkRead(b *testing.B, format Format, write func(io.Writer, int, int64) error) {
	const rows = 20000
	var data bytes.Buffer
	if err := write(&data, rows, 1); err != nil {
		b.Fatal(err)
	}
	opts := Options{Format: format, TaskType: refonte.TypeImageAnnotation, Project: "bench", CallbackURL: "https://cb.example.com/hook"}
	b.SetBytes(int64(data.Len()) / rows)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	n := 0
	for n < b.N {
		r, err := NewReader(bytes.NewReader(data.Bytes()), "bench", opts)
		if err != nil {
			b.Fatal(err)
		}
		for n < b.N {
			_, rej, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil || rej != nil {
				b.Fatalf("err %v, reject %+v", err, rej)
			}
			n++
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	if cpu := processCPU() - cpu0; cpu > 0 {
		// Rows per second of CPU time (all threads, GC included): the
		// figure to trust on a busy machine.
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "rows/cpu-s")
	}
}

// BenchmarkReadJSONL measures reading, validating and encoding synthetic
// ~400-byte imageannotation rows; one op is one row.
func BenchmarkReadJSONL(b *testing.B) { benchmarkRead(b, FormatJSONL, WriteSyntheticJSONL) }

// BenchmarkReadCSV is BenchmarkReadJSONL with the same rows as CSV.
func BenchmarkReadCSV(b *testing.B) { benchmarkRead(b, FormatCSV, WriteSyntheticCSV) }
