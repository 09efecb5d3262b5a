//go:build !linux

package testfs

import "testing"

func readOnlyDir(t testing.TB, _ string) string {
	t.Helper()
	t.Skip("a read-only folder needs a Linux bind mount")
	return ""
}
