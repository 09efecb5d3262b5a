package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerBuildStampsVersion builds the three binaries with the exact
// -X flags of the Dockerfile (the linker silently ignores -X of a variable
// that does not exist) and checks that each one's -version shows them.
func TestDockerBuildStampsVersion(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	xs := regexp.MustCompile(`-X ([^\s=]+)=\$\{(\w+)\}`).FindAllStringSubmatch(string(b), -1)
	if len(xs) != 2 {
		t.Fatalf("Dockerfile: want -X flags for VERSION and REVISION, found %q", xs)
	}
	values := map[string]string{"VERSION": "v9.8.7-dockertest", "REVISION": "0123456789abcdef"}
	var ldflags []string
	for _, x := range xs {
		v, ok := values[x[2]]
		if !ok {
			t.Fatalf("Dockerfile: -X %s takes the unknown build arg %s", x[1], x[2])
		}
		if !regexp.MustCompile(`(?m)^ARG ` + x[2] + `=`).Match(b) {
			t.Errorf("Dockerfile: -X uses ${%s} but declares no ARG %s", x[2], x[2])
		}
		ldflags = append(ldflags, "-X", x[1]+"="+v)
	}
	cmds := regexp.MustCompile(`-o /out/bin/ ((?:\./cmd/\w+\s*)+)`).FindStringSubmatch(string(b))
	if cmds == nil {
		t.Fatal("Dockerfile: no go build -o /out/bin/ ./cmd/… line")
	}
	dir := t.TempDir()
	args := append([]string{"build", "-ldflags", strings.Join(ldflags, " "), "-o", dir + "/"}, strings.Fields(cmds[1])...)
	build := exec.Command("go", args...)
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	for _, prog := range []string{"enqueue", "worker", "sandbox"} {
		out, err := exec.Command(filepath.Join(dir, prog), "-version").CombinedOutput()
		want := prog + " v9.8.7-dockertest (revision 0123456789abcdef, go"
		if err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("%s -version = %q, %v; want exit 0 and %q…", prog, out, err, want)
		}
	}
}
