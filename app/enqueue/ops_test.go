package enqueue_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// submitted enqueues rows and returns the run ID and its jobs in order.
func (f *fixture) submitted(n int, seed string) (string, []*store.Job) {
	f.t.Helper()
	r := f.main("-type", "documenttranscription", "-json", f.write(seed+".jsonl", rows(n, seed)))
	if r.code != enqueue.ExitOK {
		f.t.Fatalf("submit exit %d: %s", r.code, r.stderr)
	}
	id := r.lastJSON(f.t)["run_id"].(string)
	return id, f.jobsOf(id)
}

// complete plays the worker and the callback for one job.
func (f *fixture) complete(j *store.Job, status refonte.TaskStatus, response, errMsg string) {
	f.t.Helper()
	ctx := context.Background()
	taskID := "task-" + j.UniqueID[len(j.UniqueID)-8:]
	if _, err := f.st.MarkSubmitted(ctx, refonte.ModeTest, j.UniqueID, taskID); err != nil {
		f.t.Fatal(err)
	}
	o := store.Outcome{TaskID: taskID, Status: status, Error: errMsg, At: time.Now()}
	if response != "" {
		o.Response = []byte(response)
	}
	if _, err := f.st.Complete(ctx, refonte.ModeTest, j.UniqueID, o); err != nil {
		f.t.Fatal(err)
	}
}

func TestStatusResultsRuns(t *testing.T) {
	f := newFixture(t)
	first, _ := f.submitted(2, "older")
	runID, js := f.submitted(3, "newer")
	f.complete(js[0], refonte.StatusCompleted, `{"text":"hello"}`, "")
	f.complete(js[1], refonte.StatusError, "", "unreadable document")

	r := f.main("status", "-json", runID)
	if r.code != enqueue.ExitOK {
		t.Fatalf("status exit %d: %s", r.code, r.stderr)
	}
	m := r.lastJSON(t)
	for k, want := range map[string]int64{"rows": 3, "valid": 3, "invalid": 0, "enqueued": 3, "duplicate": 0,
		"submitted": 2, "completed": 1, "failed": 1, "canceled": 0} {
		if got := num(t, m, k); got != want {
			t.Errorf("status %s = %d, want %d", k, got, want)
		}
	}
	if m["state"] != "running" || m["run_id"] != runID {
		t.Errorf("status = %v", m)
	}
	if err := f.st.SetPaused(context.Background(), runID, "live daily cap 50 reached"); err != nil {
		t.Fatal(err)
	}
	if m := f.main("status", "-json", runID).lastJSON(t); m["state"] != "paused" || m["paused_reason"] != "live daily cap 50 reached" {
		t.Errorf("paused status = %v", m)
	}
	if r := f.main("status", runID); !strings.Contains(r.stdout, "paused (live daily cap 50 reached)") {
		t.Errorf("human paused status: %q", r.stdout)
	}
	if err := f.st.SetPaused(context.Background(), runID, ""); err != nil {
		t.Fatal(err)
	}
	if r := f.main("status", runID); r.code != 0 || !strings.Contains(r.stdout, "running") || !strings.Contains(r.stdout, runID) {
		t.Errorf("human status: %d %q", r.code, r.stdout)
	}
	if r := f.main("status", "r-nope"); r.code != enqueue.ExitError || !strings.Contains(r.stderr, "not found") {
		t.Errorf("unknown run: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := f.main("status"); r.code != enqueue.ExitUsage {
		t.Errorf("status without RUN_ID: exit %d", r.code)
	}

	r = f.main("results", runID)
	if r.code != enqueue.ExitOK {
		t.Fatalf("results exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("results lines = %d: %q", len(lines), r.stdout)
	}
	var got []map[string]json.RawMessage
	for _, l := range lines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("results line %q: %v", l, err)
		}
		if len(m) != 6 {
			t.Errorf("results line has keys %v, want line unique_id state task_id response error", m)
		}
		got = append(got, m)
	}
	want := []struct{ line, state, response, errMsg string }{
		{"1", `"completed"`, `{"text":"hello"}`, `""`},
		{"2", `"failed"`, `null`, `"unreadable document"`},
		{"3", `"enqueued"`, `null`, `""`},
	}
	for i, w := range want {
		g := got[i]
		if string(g["line"]) != w.line || string(g["state"]) != w.state || string(g["response"]) != w.response || string(g["error"]) != w.errMsg {
			t.Errorf("results[%d] = line %s state %s response %s error %s", i, g["line"], g["state"], g["response"], g["error"])
		}
		if string(g["unique_id"]) != `"`+js[i].UniqueID+`"` {
			t.Errorf("results[%d].unique_id = %s", i, g["unique_id"])
		}
	}

	r = f.main("runs")
	if r.code != enqueue.ExitOK {
		t.Fatalf("runs exit %d: %s", r.code, r.stderr)
	}
	tl := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(tl) != 3 || !strings.HasPrefix(tl[0], "RUN_ID") || !strings.HasPrefix(tl[1], runID) || !strings.HasPrefix(tl[2], first) {
		t.Errorf("runs table (newest first):\n%s", r.stdout)
	}
	r = f.main("runs", "-json", "-limit", "1")
	if m := r.lastJSON(t); r.code != 0 || m["run_id"] != runID || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("runs -json -limit 1: %q", r.stdout)
	}
}

// TestStatusShowsRetryingRows: rows whose API attempts fail (an API that
// hangs or answers 5xx) show as retrying in status and runs, with the run's
// last API error, long before any row fails.
func TestStatusShowsRetryingRows(t *testing.T) {
	f := newFixture(t)
	runID, js := f.submitted(3, "hang")
	ctx := context.Background()
	const apiErr = "refonte: POST /task/documenttranscription: context deadline exceeded\n(after 3 attempts)"
	for _, j := range js[:2] {
		for range 2 {
			if err := f.st.RecordAttempt(ctx, refonte.ModeTest, j.UniqueID, apiErr); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := f.main("status", "-json", runID).lastJSON(t)
	if got := num(t, m, "retrying"); got != 2 {
		t.Errorf("status -json retrying = %d, want 2", got)
	}
	if m["last_error"] != apiErr || m["last_error_at"] == nil {
		t.Errorf("status -json last_error = %v at %v, want %q", m["last_error"], m["last_error_at"], apiErr)
	}
	r := f.main("status", runID)
	if !strings.Contains(r.stdout, "retrying") || !strings.Contains(r.stdout, "context deadline exceeded (after 3 attempts)") {
		t.Errorf("human status without the retrying rows and the last API error:\n%s", r.stdout)
	}
	r = f.main("runs")
	tl := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(tl) != 2 || !strings.Contains(tl[0], "RETRYING") || !strings.Contains(tl[0], "LAST_API_ERROR") ||
		!strings.Contains(tl[1], " 2 ") || !strings.Contains(tl[1], "context deadline") {
		t.Errorf("runs table without the retrying rows and the last API error:\n%s", r.stdout)
	}
	if m := f.main("runs", "-json").lastJSON(t); num(t, m, "retrying") != 2 || m["last_error"] != apiErr {
		t.Errorf("runs -json = %v", m)
	}
	// A row created at last leaves the retrying ones.
	if _, err := f.st.RecordCreated(ctx, refonte.ModeTest, js[0].UniqueID, "task-1"); err != nil {
		t.Fatal(err)
	}
	if got := num(t, f.main("status", "-json", runID).lastJSON(t), "retrying"); got != 1 {
		t.Errorf("retrying = %d after one row was created, want 1", got)
	}
}

// TestStatusShowsARejectedKey: while the API rejects the key of a run's
// mode (the workers paused the mode), status and runs show the run paused
// with the reason; afterwards it is running again.
func TestStatusShowsARejectedKey(t *testing.T) {
	f := newFixture(t)
	runID, _ := f.submitted(2, "revoked")
	ctx := context.Background()
	p := store.KeyPause{Reason: "the API rejects the test key since 2026-12-04 17:00:00 UTC (401 no valid API key provided)", Since: time.Now()}
	if _, err := f.st.PauseMode(ctx, refonte.ModeTest, p); err != nil {
		t.Fatal(err)
	}
	m := f.main("status", "-json", runID).lastJSON(t)
	if m["state"] != "paused" || m["paused_reason"] != p.Reason {
		t.Errorf("status -json = state %v, reason %v; want paused, %q", m["state"], m["paused_reason"], p.Reason)
	}
	if r := f.main("status", runID); !strings.Contains(r.stdout, "paused (the API rejects the test key") {
		t.Errorf("human status:\n%s", r.stdout)
	}
	if r := f.main("runs"); !strings.Contains(r.stdout, runID+"  paused") {
		t.Errorf("runs table:\n%s", r.stdout)
	}
	if m := f.main("runs", "-json").lastJSON(t); m["state"] != "paused" || m["paused_reason"] != p.Reason {
		t.Errorf("runs -json = %v", m)
	}
	cur, _, err := f.st.ModePause(ctx, refonte.ModeTest)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.st.ResumeMode(ctx, refonte.ModeTest, cur); err != nil || !ok {
		t.Fatalf("ResumeMode = %v, %v", ok, err)
	}
	if m := f.main("status", "-json", runID).lastJSON(t); m["state"] != "running" || m["paused_reason"] != nil {
		t.Errorf("status after the key works again = %v", m)
	}
}

func TestRetryRequeuesFailedRows(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ds := f.write("retry.jsonl", rows(4, "retry"))
	r := f.main("-type", "documenttranscription", "-json", ds)
	if r.code != 0 {
		t.Fatalf("submit: %d %s", r.code, r.stderr)
	}
	runID := r.lastJSON(t)["run_id"].(string)
	js := f.jobsOf(runID)
	q := jobs.Queue(refonte.ModeTest)
	taskID := func(i int) string { return jobs.TaskID(refonte.ModeTest, js[i].UniqueID) }
	// Row 1 failed at the worker: asynq archived its task.
	if err := f.insp.ArchiveTask(q, taskID(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(ctx, refonte.ModeTest, js[0].UniqueID, "400: bad attachment"); err != nil {
		t.Fatal(err)
	}
	// Row 2 errored at the API after creation: its asynq task is gone, so
	// its payload is rebuilt from the dataset.
	failAtAPI := func(i int) {
		t.Helper()
		if err := f.insp.DeleteTask(q, taskID(i)); err != nil {
			t.Fatal(err)
		}
		f.complete(js[i], refonte.StatusError, "", "labeler gave up")
	}
	failAtAPI(1)
	f.complete(js[2], refonte.StatusCompleted, `{}`, "")

	r = f.main("retry", runID)
	if r.code != enqueue.ExitOK {
		t.Fatalf("retry exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "2 failed rows, 2 re-queued (1 rebuilt from the dataset), 0 not re-queued") {
		t.Errorf("retry output: %q", r.stdout)
	}
	for i := range 2 {
		j, err := f.st.GetJob(ctx, refonte.ModeTest, js[i].UniqueID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != store.JobEnqueued || j.Generation != 1 {
			t.Errorf("retried job %d = %+v", i, j)
		}
		info, err := f.insp.GetTaskInfo(q, taskID(i))
		if err != nil || info.State != asynq.TaskStatePending {
			t.Fatalf("retried task %d: %v %v", i, info, err)
		}
		p, err := jobs.DecodeSubmitPayload(info.Payload)
		if err != nil || p.Line != int64(i+1) || p.Run != runID || p.UniqueID != js[i].UniqueID {
			t.Errorf("retried payload %d: %+v %v", i, p, err)
		}
		var params map[string]any
		if err := json.Unmarshal(p.Params, &params); err != nil || params["unique_id"] != js[i].UniqueID {
			t.Errorf("retried params %d: %s", i, p.Params)
		}
	}
	if run := f.run(runID); run.Failed != 0 || run.State != store.RunRunning {
		t.Errorf("run after retry: state %s failed %d", run.State, run.Failed)
	}

	// Row 2 fails at the API again and the dataset file is gone: it cannot
	// be re-queued (exit 3) until the dataset is given with -dataset.
	failAtAPI(1)
	moved := f.dir + "/moved.jsonl"
	if err := os.Rename(ds, moved); err != nil {
		t.Fatal(err)
	}
	r = f.main("retry", runID)
	if r.code != enqueue.ExitIncomplete || !strings.Contains(r.stdout, "1 failed rows, 0 re-queued (0 rebuilt from the dataset), 1 not re-queued") {
		t.Errorf("retry without the dataset: exit %d, %q", r.code, r.stdout)
	}
	if j, _ := f.st.GetJob(ctx, refonte.ModeTest, js[1].UniqueID); j.State != store.JobFailed {
		t.Errorf("unretryable row state = %s, want failed", j.State)
	}
	r = f.main("retry", "-dataset", moved, runID)
	if r.code != enqueue.ExitOK || !strings.Contains(r.stdout, "1 re-queued (1 rebuilt from the dataset)") {
		t.Errorf("retry -dataset: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	if j, _ := f.st.GetJob(ctx, refonte.ModeTest, js[1].UniqueID); j.State != store.JobEnqueued || j.Generation != 2 {
		t.Errorf("after retry -dataset: %+v", j)
	}
}

func TestWaitUntilDone(t *testing.T) {
	tests := []struct {
		name     string
		fail     bool
		wantCode int
	}{
		{"all completed", false, enqueue.ExitOK},
		{"one failed", true, enqueue.ExitIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ds := f.write("w.jsonl", rows(4, "wait"))
			done := make(chan result, 1)
			go func() { done <- f.main("-type", "documenttranscription", "-wait", "-json", ds) }()
			runID := f.waitForRun(store.RunRunning)
			js := f.jobsOf(runID)
			for i, j := range js {
				if tt.fail && i == 2 {
					f.complete(j, refonte.StatusError, "", "nope")
					continue
				}
				f.complete(j, refonte.StatusCompleted, `{"ok":true}`, "")
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("-wait did not return after the run was done")
			}
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s", r.code, tt.wantCode, r.stderr)
			}
			m := r.lastJSON(t)
			wantFailed := int64(0)
			if tt.fail {
				wantFailed = 1
			}
			if num(t, m, "submitted") != 4 || num(t, m, "completed") != 4-wantFailed || num(t, m, "failed") != wantFailed || m["state"] != "done" {
				t.Errorf("summary = %v", m)
			}
		})
	}
}

func TestWaitInterrupted(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		done <- f.mainWith(mainOpts{ctx: ctx}, "-type", "documenttranscription", "-wait", f.write("i.jsonl", rows(3, "int")))
	}()
	runID := f.waitForRun(store.RunRunning)
	cancel()
	r := <-done
	if r.code != enqueue.ExitError || !strings.Contains(r.stderr, "enqueue status "+runID) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if run := f.run(runID); run.State != store.RunRunning {
		t.Errorf("run state after an interrupted wait = %s, want running", run.State)
	}
}

// waitForRun polls until the newest run, other than the runs named in
// not, reaches state and returns its ID.
func (f *fixture) waitForRun(state store.RunState, not ...string) string {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		runs, err := f.st.ListRuns(context.Background(), 1)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(runs) == 1 && runs[0].State == state && !slices.Contains(not, runs[0].ID) {
			return runs[0].ID
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("no run reached state %s", state)
	return ""
}
