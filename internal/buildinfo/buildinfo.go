// Package buildinfo tells which build a binary is: the module version and
// VCS revision Go stamped into it (runtime/debug.ReadBuildInfo), overridden
// by the Docker build through -ldflags -X (a build from a copied source tree
// has no VCS data), and the Go version. Every binary prints it for -version;
// the worker exports it as the refonte_build_info gauge.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the linker, never at run time (the Dockerfile passes both):
//
//	go build -ldflags "-X github.com/refonte-ai/refonte-batch/internal/buildinfo.version=v1.2.3 \
//	  -X github.com/refonte-ai/refonte-batch/internal/buildinfo.revision=0123abc" ./cmd/...
//
// Empty means "read it from debug.ReadBuildInfo".
var (
	version  string
	revision string
)

// Unknown stands for a version or revision the build did not record.
const Unknown = "unknown"

// Info describes one build.
type Info struct {
	// Version is the -X version, else the main module's version (a tag or a
	// pseudo-version when built with VCS stamping), else Unknown. A build
	// from a source checkout without a tag reports "(devel)".
	Version string
	// Revision is the -X revision, else the VCS revision (with "-dirty"
	// when the tree had local changes), else Unknown.
	Revision string
	// GoVersion is the Go release that built the binary.
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return fromBuildInfo(bi, version, revision)
}

// fromBuildInfo merges the linker overrides over what Go recorded.
func fromBuildInfo(bi *debug.BuildInfo, xVersion, xRevision string) Info {
	info := Info{Version: xVersion, Revision: xRevision, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if info.Version == "" && bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		if info.Revision == "" {
			var rev string
			var dirty bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" && dirty {
				rev += "-dirty"
			}
			info.Revision = rev
		}
	}
	if info.Version == "" {
		info.Version = Unknown
	}
	if info.Revision == "" {
		info.Revision = Unknown
	}
	return info
}

// Line is the -version output of program: "PROGRAM VERSION (revision REV, GOVERSION)".
func (i Info) Line(program string) string {
	return strings.Join([]string{program, i.Version, "(revision " + i.Revision + ",", i.GoVersion + ")"}, " ")
}

// Collector returns the refonte_build_info gauge: always 1, with the
// build's version, revision and goversion as labels.
func (i Info) Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "refonte_build_info",
		Help: "Always 1; the labels name the running build (version, VCS revision, Go version).",
		ConstLabels: prometheus.Labels{
			"version":   i.Version,
			"revision":  i.Revision,
			"goversion": i.GoVersion,
		},
	})
	g.Set(1)
	return g
}
