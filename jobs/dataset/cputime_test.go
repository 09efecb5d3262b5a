package dataset

import (
	"time"

	"github.com/refonte-ai/refonte-batch/internal/cputime"
)

// processCPU returns the CPU time the process has used so far (0 where it
// is not measured), for the benchmarks' cost per row.
func processCPU() time.Duration { return cputime.Process() }
