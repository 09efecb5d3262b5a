package enqueue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/internal/datasrc/cloud"
	"github.com/refonte-ai/refonte-batch/internal/syncbuf"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// fixture is a private redis-server and the clients of one test.
type fixture struct {
	t    *testing.T
	url  string
	rdb  *redis.Client
	st   *store.Store
	insp *asynq.Inspector
	env  map[string]string
	dir  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	url := testredis.Fresh(t)
	rdb := testredis.ClientOn(t, url)
	return &fixture{
		t: t, url: url, rdb: rdb, st: store.New(rdb, store.Options{}),
		insp: asynq.NewInspectorFromRedisClient(rdb),
		env:  map[string]string{"REDIS_URL": url},
		dir:  t.TempDir(),
	}
}

// result is what one Main call did.
type result struct {
	code           int
	stdout, stderr string
}

// lastJSON decodes the last stdout line.
func (r result) lastJSON(t *testing.T) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("last stdout line is not JSON: %q (%v); stderr: %s", lines[len(lines)-1], err, r.stderr)
	}
	return m
}

// num reads a JSON number field.
func num(t *testing.T, m map[string]any, k string) int64 {
	t.Helper()
	v, ok := m[k].(float64)
	if !ok {
		t.Fatalf("field %q missing or not a number in %v", k, m)
	}
	return int64(v)
}

type mainOpts struct {
	ctx                 context.Context
	stdin               io.Reader
	stdinTTY, stderrTTY bool
}

func (f *fixture) main(args ...string) result {
	return f.mainWith(mainOpts{}, args...)
}

func (f *fixture) mainWith(o mainOpts, args ...string) result {
	f.t.Helper()
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	if o.stdin == nil {
		o.stdin = strings.NewReader("")
	}
	var out, errb syncbuf.Buffer
	code := enqueue.Main(o.ctx, args, enqueue.Env{
		Stdin: o.stdin, Stdout: &out, Stderr: &errb,
		Getenv:   func(k string) string { return f.env[k] },
		StdinTTY: o.stdinTTY, StderrTTY: o.stderrTTY,
		PollInterval: 20 * time.Millisecond,
		Objects:      cloud.Open,
	})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// write writes a file in the test's directory and returns its path.
func (f *fixture) write(name, content string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// rows returns n valid documenttranscription JSONL rows, distinct by seed.
func rows(n int, seed string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"attachment":"https://files.example.com/%s/%d.pdf","metadata":{"i":%d}}`+"\n", seed, i, i)
	}
	return b.String()
}

func (f *fixture) dbsize() int64 {
	f.t.Helper()
	n, err := f.rdb.DBSize(context.Background()).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// pending returns the number of pending tasks of an asynq queue (0 if none).
func (f *fixture) pending(queue string) int {
	f.t.Helper()
	info, err := f.insp.GetQueueInfo(queue)
	if err != nil {
		return 0
	}
	return info.Pending
}

func (f *fixture) run(id string) *store.Run {
	f.t.Helper()
	r, err := f.st.GetRun(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// jobsOf returns the run's job records in dataset order.
func (f *fixture) jobsOf(runID string) []*store.Job {
	f.t.Helper()
	var js []*store.Job
	err := f.st.RunRows(context.Background(), runID, func(_ store.RunRow, j *store.Job) error {
		js = append(js, j)
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return js
}
