package deploy

import (
	"io"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/app/worker"
)

// fakeEnv gives the programs the configuration a manifest would mount, so
// that only the manifests' flags are under test.
func fakeEnv(name string) string {
	return map[string]string{
		"REFONTE_TEST_API_KEY":      "test_manifestcheck",
		"REFONTE_CALLBACK_AUTH_KEY": "manifestcheck",
		"REFONTE_ADMIN_TOKEN":       "manifestcheck",
		"REDIS_URL":                 "redis://127.0.0.1:6379/0",
	}[name]
}

// TestManifestFlagsParse runs the worker's and enqueue's own flag parsing
// over the arguments the manifests and the compose file pass, so a renamed
// or mistyped flag fails here rather than in a crash-looping pod.
func TestManifestFlagsParse(t *testing.T) {
	docs := loadYAML(t)
	var workers, enqueues int
	check := func(file, bin string, args []string) {
		switch {
		case strings.HasSuffix(bin, "/worker"):
			workers++
			if _, err := worker.LoadConfig(args, fakeEnv, io.Discard); err != nil {
				t.Errorf("%s: worker %v: %v", file, args, err)
			}
		case strings.HasSuffix(bin, "/enqueue"):
			enqueues++
			if len(args) == 0 {
				return // compose's one-off service: arguments come from `docker compose run`
			}
			// The params files the manifests name are the examples'.
			args = mapPaths(t, args, map[string]string{"/examples": "../examples", "/data": "../examples"})
			if _, err := enqueue.ParseSubmit(args, fakeEnv, io.Discard); err != nil {
				t.Errorf("%s: enqueue %v: %v", file, args, err)
			}
		}
	}
	for _, d := range docs {
		if spec := podSpec(d); spec != nil {
			for _, c := range list(spec["containers"]) {
				cmd := strs(get(c, "command"))
				if len(cmd) > 0 {
					check(d.file, cmd[0], strs(get(c, "args")))
				}
			}
		}
		for name, svc := range asMap(d.obj["services"]) {
			entry := strs(get(svc, "entrypoint"))
			if len(entry) == 0 {
				entry = []string{"/usr/local/bin/worker"} // the image's ENTRYPOINT
				if name == "redis" {
					continue
				}
			}
			check(d.file+" service "+name, entry[0], strs(get(svc, "command")))
		}
	}
	if workers < 3 || enqueues < 2 {
		t.Errorf("checked %d worker and %d enqueue command lines; want the Deployment, both compose workers, the CronJob and compose's enqueue", workers, enqueues)
	}
}
