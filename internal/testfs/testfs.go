// Package testfs holds file-system helpers for tests: a read-only folder
// made the honest way (a read-only bind mount), since root ignores the
// permission bits that chmod would set; and the contents of files that are
// not datasets (a PNG, gzip, UTF-16 text).
package testfs

import "testing"

// ReadOnlyDir makes the folder src visible read-only at a new temporary
// folder and returns that folder's path: a write, create or remove under
// it fails with EROFS, whoever the caller is. Files written to src before
// the call (a dataset, a stale output) are visible through it. The mount
// is removed by t.Cleanup. Where mounting is not permitted (not root, not
// Linux, a container without CAP_SYS_ADMIN) the test is skipped with the
// reason.
func ReadOnlyDir(t testing.TB, src string) string {
	t.Helper()
	return readOnlyDir(t, src)
}
