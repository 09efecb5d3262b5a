//go:build linux

package testfs

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

func readOnlyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("a read-only folder needs a bind mount, which is not permitted here (run as root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dst, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dst, err)
		}
	})
	if err := syscall.Mount("", dst, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("remounting a bind mount read-only is not permitted here: %v", err)
	}
	// Prove it: a folder that is still writable would let the caller's test
	// pass for the wrong reason.
	f, err := os.CreateTemp(dst, "probe-*")
	if err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Fatalf("%s is still writable after a read-only remount", dst)
	}
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("writing to the read-only mount %s: %v, want EROFS", dst, err)
	}
	return dst
}
