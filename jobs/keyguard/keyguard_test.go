package keyguard_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap/zaptest"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/keyguard"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// fleet is two guards (two workers) on one real redis-server and sandbox,
// each with its own client reading its key from one secret file.
type fleet struct {
	sb      *sandbox.Server
	st      *store.Store
	insp    *asynq.Inspector
	file    string
	guards  []*keyguard.Guard
	clients []*refonte.Client
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	st, rdb := testkit.Store(t, store.Options{})
	sb, api := testkit.Sandbox(t, sandbox.Config{NoAutoComplete: true, Logger: zaptest.NewLogger(t)})
	f := &fleet{sb: sb, st: st, insp: asynq.NewInspectorFromRedisClient(rdb),
		file: filepath.Join(t.TempDir(), "test-key")}
	f.writeKey(t, sandbox.DefaultTestKey)
	// A task in the queue, so that asynq knows the queue.
	if _, err := asynq.NewClientFromRedisClient(rdb).Enqueue(asynq.NewTask(jobs.TypeSubmit, nil), asynq.Queue(jobs.Queue(refonte.ModeTest))); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c := testkit.Client(t, sandbox.DefaultTestKey, api, refonte.RetryPolicy{Disabled: true})
		g, err := keyguard.New(keyguard.Config{
			Store: f.st, Queues: f.insp,
			Clients:       map[refonte.Mode]*refonte.Client{refonte.ModeTest: c},
			Keys:          map[refonte.Mode]refonte.Secret{refonte.ModeTest: sandbox.DefaultTestKey},
			KeyFiles:      map[refonte.Mode]string{refonte.ModeTest: f.file},
			ProbeInterval: time.Nanosecond, // every Check probes
			Logger:        zaptest.NewLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		f.guards = append(f.guards, g)
		f.clients = append(f.clients, c)
	}
	return f
}

func (f *fleet) writeKey(t *testing.T, key string) {
	t.Helper()
	if err := os.WriteFile(f.file, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// check runs one Check on every guard.
func (f *fleet) check() {
	for _, g := range f.guards {
		g.Check(context.Background())
	}
}

// wantPaused checks every guard's view, the shared record and the queue.
func (f *fleet) wantPaused(t *testing.T, paused bool) {
	t.Helper()
	for i, g := range f.guards {
		if _, got := g.Paused(refonte.ModeTest); got != paused {
			t.Errorf("worker %d: Paused = %v, want %v", i, got, paused)
		}
		if why := g.NotReady(); (why != "") != paused {
			t.Errorf("worker %d: NotReady = %q, want paused %v", i, why, paused)
		}
	}
	if _, ok, err := f.st.ModePause(context.Background(), refonte.ModeTest); err != nil || ok != paused {
		t.Errorf("ModePause = %v, %v; want %v", ok, err, paused)
	}
	info, err := f.insp.GetQueueInfo(jobs.Queue(refonte.ModeTest))
	if err != nil {
		t.Fatal(err)
	}
	if info.Paused != paused {
		t.Errorf("asynq queue paused = %v, want %v", info.Paused, paused)
	}
}

// TestRevokedKeyThenRestored: a 401 met by one worker pauses the mode on
// both (shared record, asynq queue paused); probes with the revoked key
// keep it paused; once the API takes the key again, a probe resumes it.
func TestRevokedKeyThenRestored(t *testing.T) {
	f := newFleet(t)
	f.wantPaused(t, false)
	if err := f.sb.SetKey(refonte.ModeTest, "test_someone_else"); err != nil {
		t.Fatal(err)
	}
	p := f.guards[0].Rejected(context.Background(), refonte.ModeTest, "401 no valid API key provided")
	if !strings.Contains(p.Reason, "401 no valid API key provided") || strings.Contains(p.Reason, sandbox.DefaultTestKey) {
		t.Errorf("reason %q: want the API's answer and never the key", p.Reason)
	}
	again := f.guards[1].Rejected(context.Background(), refonte.ModeTest, "401 no valid API key provided")
	if !again.Since.Equal(p.Since) {
		t.Errorf("a second 401 recorded a new pause (since %v, first %v)", again.Since, p.Since)
	}
	f.check()
	f.wantPaused(t, true)
	f.check() // probes with the revoked key
	f.wantPaused(t, true)

	if err := f.sb.SetKey(refonte.ModeTest, sandbox.DefaultTestKey); err != nil { // restored
		t.Fatal(err)
	}
	f.check()
	f.wantPaused(t, false)
}

// TestRotatedSecretFileResumes: the key is rotated at the API and in the
// secret file; a probe re-reads the file, the clients use the new key.
func TestRotatedSecretFileResumes(t *testing.T) {
	f := newFleet(t)
	const rotated = "test_rotated_secret"
	if err := f.sb.SetKey(refonte.ModeTest, rotated); err != nil {
		t.Fatal(err)
	}
	f.guards[0].Rejected(context.Background(), refonte.ModeTest, "401 no valid API key provided")
	f.check()
	f.wantPaused(t, true)
	f.writeKey(t, "live_wrong_mode") // a bad file keeps the key in use
	f.check()
	f.wantPaused(t, true)
	f.writeKey(t, rotated)
	f.check()
	f.wantPaused(t, false)
	for i, c := range f.clients {
		if _, err := c.ListTasks(context.Background(), refonte.ListTasksOptions{Limit: 1}); err != nil {
			t.Errorf("worker %d's client after the rotation: %v", i, err)
		}
	}
}
