package submit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap/zaptest"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// gatedAPI is a proxy in front of the sandbox that holds every request
// until release is closed and counts the requests it holds.
type gatedAPI struct {
	base    string // API base URL of the proxy
	release chan struct{}
	held    atomic.Int64
	peak    atomic.Int64
	calls   atomic.Int64
}

func newGatedAPI(t *testing.T, sandboxBase string) *gatedAPI {
	t.Helper()
	u, err := url.Parse(sandboxBase)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedAPI{release: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.calls.Add(1)
		n := g.held.Add(1)
		for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
		}
		<-g.release
		g.held.Add(-1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
		ts.Close()
	})
	g.base = ts.URL + u.Path
	return g
}

// waitHeld waits until the proxy holds n requests.
func (g *gatedAPI) waitHeld(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.held.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the API holds %d requests, want %d", g.held.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// slotHandler is a handler with MaxInFlight slots whose test-mode API
// calls go through a gatedAPI.
func slotHandler(t *testing.T, slots int) (*Handler, *store.Store, *sandbox.Server, *gatedAPI) {
	t.Helper()
	st, _ := newStore(t)
	sb, base := newSandbox(t, sandbox.Config{})
	g := newGatedAPI(t, base)
	h, err := New(Options{Store: st, MaxInFlight: slots, Logger: zaptest.NewLogger(t),
		Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: newClient(t, testKey, g.base)}})
	if err != nil {
		t.Fatal(err)
	}
	return h, st, sb, g
}

// goProcess runs h.ProcessTask(task) in a goroutine and returns its result's channel.
func goProcess(h *Handler, task *asynq.Task) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- h.ProcessTask(context.Background(), task) }()
	return errc
}

// TestMaxInFlightBoundsAPICalls: with MaxInFlight n, n deliveries reach
// the API at once and no more, however many asynq runs; when the API
// answers, every job is submitted.
func TestMaxInFlightBoundsAPICalls(t *testing.T) {
	for _, tc := range []struct {
		name              string
		slots, deliveries int
	}{
		{"one slot", 1, 4},
		{"three slots", 3, 10},
		{"more slots than jobs", 8, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, st, sb, g := slotHandler(t, tc.slots)
			_, tasks := addRun(t, st, refonte.ModeTest, tc.deliveries, nil)
			errs := make([]<-chan error, len(tasks))
			for i, task := range tasks {
				errs[i] = goProcess(h, task)
			}
			want := int64(min(tc.slots, tc.deliveries))
			g.waitHeld(t, want)
			time.Sleep(50 * time.Millisecond) // room for an unbounded delivery to show up
			if got := g.held.Load(); got != want {
				t.Fatalf("the API holds %d creates at once, want %d (MaxInFlight %d)", got, want, tc.slots)
			}
			if got := h.InFlight(); got != int(want) {
				t.Errorf("InFlight() = %d, want %d", got, want)
			}
			close(g.release)
			for _, errc := range errs {
				if err := <-errc; err != nil {
					t.Errorf("ProcessTask: %v", err)
				}
			}
			for _, task := range tasks {
				if j := job(t, st, task); j.State != store.JobSubmitted {
					t.Errorf("job %s = %s, want submitted", j.UniqueID, j.State)
				}
			}
			if s := sb.Stats(); s.TasksCreated != int64(tc.deliveries) {
				t.Errorf("tasks created = %d, want %d", s.TasksCreated, tc.deliveries)
			}
			if g.peak.Load() != want || h.InFlight() != 0 {
				t.Errorf("peak creates at once %d (want %d), slots still held %d (want 0)", g.peak.Load(), want, h.InFlight())
			}
		})
	}
}

// TestDrainGivesBackJobsWaitingForASlot: once the handler drains, a
// delivery waiting for an API slot, and any later one, is rescheduled at
// once (not a failure, no API call, job still enqueued), while the
// delivery holding the slot finishes its create.
func TestDrainGivesBackJobsWaitingForASlot(t *testing.T) {
	h, st, sb, g := slotHandler(t, 1)
	_, tasks := addRun(t, st, refonte.ModeTest, 3, nil)
	first := goProcess(h, tasks[0])
	g.waitHeld(t, 1)
	waiting := goProcess(h, tasks[1])
	time.Sleep(50 * time.Millisecond) // let it reach the slot wait (else Drain's first check answers it)
	h.Drain()
	h.Drain() // idempotent
	wantGivenBack := func(name string, err error) {
		t.Helper()
		var re *RescheduleError
		if !errors.As(err, &re) || re.Reason != ReasonShutdown || re.Delay != 0 || IsFailure(err) ||
			errors.Is(err, asynq.SkipRetry) {
			t.Errorf("%s delivery = %v, want an immediate shutdown reschedule that is not a failure", name, err)
		}
	}
	select {
	case err := <-waiting:
		wantGivenBack("waiting", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting delivery still waits after Drain")
	}
	wantGivenBack("after drain", h.ProcessTask(context.Background(), tasks[2]))
	close(g.release)
	if err := <-first; err != nil {
		t.Fatalf("the delivery holding the slot: %v", err)
	}
	if j := job(t, st, tasks[0]); j.State != store.JobSubmitted {
		t.Errorf("job holding the slot = %s, want submitted", j.State)
	}
	for _, task := range tasks[1:] {
		if j := job(t, st, task); j.State != store.JobEnqueued || j.Attempts != 0 {
			t.Errorf("given-back job = %s after %d attempts, want enqueued, none", j.State, j.Attempts)
		}
	}
	if g.calls.Load() != 1 || sb.Stats().CreateCalls != 1 {
		t.Errorf("API calls %d, sandbox creates %d; want 1 and 1", g.calls.Load(), sb.Stats().CreateCalls)
	}
}

// TestDrainLetsALastAttemptWait: a job on its last attempt is not given
// back by Drain (asynq would archive it): it waits for the slot and is
// submitted once the slot is free.
func TestDrainLetsALastAttemptWait(t *testing.T) {
	h, st, sb, g := slotHandler(t, 1)
	_, tasks := addRun(t, st, refonte.ModeTest, 2, nil)
	first := goProcess(h, tasks[0])
	g.waitHeld(t, 1)
	p, err := jobs.DecodeSubmitPayload(tasks[1].Payload())
	if err != nil {
		t.Fatal(err)
	}
	h.Drain()
	last := make(chan error, 1)
	go func() { last <- h.process(context.Background(), p, jobs.DefaultMaxRetry, true) }()
	select {
	case err := <-last:
		t.Fatalf("the last attempt returned %v while the slot was taken, want it to wait", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(g.release)
	for name, errc := range map[string]<-chan error{"first": first, "last attempt": last} {
		if err := <-errc; err != nil {
			t.Errorf("%s delivery: %v", name, err)
		}
	}
	for _, task := range tasks {
		if j := job(t, st, task); j.State != store.JobSubmitted {
			t.Errorf("job %s = %s, want submitted", j.UniqueID, j.State)
		}
	}
	if s := sb.Stats(); s.TasksCreated != 2 {
		t.Errorf("tasks created = %d, want 2", s.TasksCreated)
	}
}

// TestSlotWaitEndsWithTheContext: a delivery whose context ends while it
// waits for a slot returns the context's error (asynq retries it).
func TestSlotWaitEndsWithTheContext(t *testing.T) {
	h, st, _, g := slotHandler(t, 1)
	_, tasks := addRun(t, st, refonte.ModeTest, 2, nil)
	first := goProcess(h, tasks[0])
	g.waitHeld(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := h.ProcessTask(ctx, tasks[1])
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrRescheduled) ||
		!strings.Contains(err.Error(), "waiting for an API slot") {
		t.Errorf("ProcessTask = %v, want the context's deadline error while waiting for an API slot", err)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Errorf("the delivery holding the slot: %v", err)
	}
	if g.calls.Load() != 1 {
		t.Errorf("API calls = %d, want 1", g.calls.Load())
	}
}

func TestNewRejectsNegativeMaxInFlight(t *testing.T) {
	st, _ := newStore(t)
	_, base := newSandbox(t, sandbox.Config{})
	_, err := New(Options{Store: st, MaxInFlight: -1,
		Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: newClient(t, testKey, base)}})
	if err == nil {
		t.Fatal("New accepted MaxInFlight -1")
	}
}
