package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFromBuildInfo(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.1"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "false"}}}
	dirty := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}}
	bare := &debug.BuildInfo{GoVersion: "go1.26.8"}
	for _, tc := range []struct {
		name       string
		bi         *debug.BuildInfo
		xVer, xRev string
		want       Info
	}{
		{"stamped by go", stamped, "", "", Info{"v0.3.1", "abc123", "go1.26.8"}},
		{"local changes", dirty, "", "", Info{"(devel)", "abc123-dirty", "go1.26.8"}},
		{"linker overrides", stamped, "v9.9.9", "fff000", Info{"v9.9.9", "fff000", "go1.26.8"}},
		{"docker build without vcs", bare, "v0.1.0", "", Info{"v0.1.0", Unknown, "go1.26.8"}},
		{"nothing recorded", bare, "", "", Info{Unknown, Unknown, "go1.26.8"}},
		{"no build info", nil, "", "", Info{Unknown, Unknown, runtime.Version()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromBuildInfo(tc.bi, tc.xVer, tc.xRev); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLineAndCollector(t *testing.T) {
	i := Info{Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26.8"}
	if got, want := i.Line("worker"), "worker v1.2.3 (revision abc, go1.26.8)"; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(i.Collector())
	want := `# HELP refonte_build_info Always 1; the labels name the running build (version, VCS revision, Go version).
# TYPE refonte_build_info gauge
refonte_build_info{goversion="go1.26.8",revision="abc",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "refonte_build_info"); err != nil {
		t.Error(err)
	}
}
