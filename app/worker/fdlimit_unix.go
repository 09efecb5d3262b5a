//go:build unix

package worker

import "syscall"

// fileLimit returns the process's soft limit of open files (0: unknown).
func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}
