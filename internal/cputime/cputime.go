// Package cputime measures the CPU time the process has used, so that
// benchmarks can report a cost per item that does not depend on how busy
// the machine is.
package cputime
