package console_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/refonte-ai/refonte-batch/app/console"
	"github.com/refonte-ai/refonte-batch/internal/testbrowser"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestBrowserPages loads the runs list and a run page (with a timeline,
// failure groups and a hostile dataset name) in headless Chromium, checks
// what a reader sees and that no script ran from the data, and saves
// screenshots in the test's temp dir (CONSOLE_SCREENSHOTS=DIR keeps them
// there instead).
func TestBrowserPages(t *testing.T) {
	st := newStore(t)
	m := refonte.ModeTest
	outs := []func(string) error{}
	for i := range 40 {
		switch {
		case i%9 == 3:
			outs = append(outs, failed(st, m, "attachment: HTTP 404 fetching https://cdn.example/img.png"))
		case i%13 == 5:
			outs = append(outs, failed(st, m, "params.geometry: unknown shape \"hexagon\""))
		default:
			outs = append(outs, completed(st, m))
		}
	}
	start := time.Now().Add(-41 * time.Minute).UTC().Truncate(time.Millisecond)
	run := seedRun(t, st, &store.Run{Dataset: "<script>window.pwned=1</script>street-signs.csv", Project: "signs",
		Batch: "signs-2026-12", Type: refonte.TypeImageAnnotation, CreatedAt: start}, 60, outs...)
	// A timeline: 40 minutes of rows going in and coming back.
	ctx := context.Background()
	for i := 0; i <= 40; i++ {
		r := *run
		r.Submitted = min(run.Submitted, int64(i*i/40))
		r.Completed = max(0, min(run.Completed, int64((i-8)*(i-8)/30)))
		r.Failed = min(run.Failed, int64(i/5))
		if err := st.RecordTimelines(ctx, []*store.Run{&r}, start.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateRun(ctx, &store.Run{Dataset: "receipts.jsonl", Mode: refonte.ModeLive, Project: "finance"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newConsole(t, st, console.Options{RateLimit: 10, LiveDailyLimit: func() int64 { return 5000 }}))
	t.Cleanup(srv.Close) // after the browser's cleanup, which ends its event stream

	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	b := testbrowser.New(t, 3*time.Minute) // generous: a loaded machine starts Chromium slowly
	if err := chromedp.Do(b, chromedp.Navigate(srv.URL+"/runs"), chromedp.WaitVisible("table.runs")); err != nil {
		t.Fatal(err)
	}
	testbrowser.Screenshot(t, b, filepath.Join(dir, "runs.png"))
	if err := chromedp.Do(b, chromedp.Navigate(srv.URL+"/runs/"+run.ID), chromedp.WaitVisible("#chart-h")); err != nil {
		t.Fatal(err)
	}
	// Let one live update land, then look.
	time.Sleep(2500 * time.Millisecond)
	testbrowser.Screenshot(t, b, filepath.Join(dir, "run.png"))
	failedText, err := chromedp.Run(b, chromedp.Text(`[data-count="failed"]`))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(run.Failed); failedText != want {
		t.Errorf("failed count shows %q, want %s", failedText, want)
	}
	body, err := chromedp.Run(b, chromedp.Text("main"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<script>window.pwned=1</script>street-signs.csv", "attachment: HTTP 404", "results.jsonl"} {
		if !strings.Contains(body, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
	pwned, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.pwned === 1`))
	if err != nil {
		t.Fatal(err)
	}
	if pwned {
		t.Error("the dataset name ran as a script")
	}
}

// TestBrowserActions steers a run from its page in headless Chromium, as
// an operator would: Pause, Resume, then Cancel, which the browser does not
// send before its confirmation box is ticked. The forms post from the
// console's own origin, which the cross-origin check lets through.
func TestBrowserActions(t *testing.T) {
	st := newStore(t)
	run := seedRun(t, st, &store.Run{Dataset: "steer.jsonl", CreatedAt: time.Now()}, 5)
	srv := httptest.NewServer(steering(t, st, console.Options{}))
	t.Cleanup(srv.Close)
	b := testbrowser.New(t, 3*time.Minute)
	page := srv.URL + "/runs/" + run.ID
	if err := chromedp.Do(b, chromedp.Navigate(page), chromedp.WaitVisible("#act-h")); err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	testbrowser.Screenshot(t, b, filepath.Join(dir, "run-actions.png"))
	if err := chromedp.Do(b, chromedp.Click(`form[action$="/pause"] button`), chromedp.WaitVisible(`form[action$="/resume"] button`)); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if r := getRun(t, st, run.ID); !r.OperatorPaused {
		t.Fatalf("after Pause the run is %s, not paused by its operator", r.State)
	}
	if err := chromedp.Do(b, chromedp.Click(`form[action$="/resume"] button`), chromedp.WaitVisible(`form[action$="/pause"] button`)); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if r := getRun(t, st, run.ID); r.OperatorPaused {
		t.Fatal("after Resume the run is still paused")
	}
	// Unconfirmed: the browser keeps the form (required box) and nothing changes.
	if err := chromedp.Do(b, chromedp.Click(`form.cancel button`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if r := getRun(t, st, run.ID); r.State == store.RunCanceled || !r.CancelRequestedAt.IsZero() {
		t.Fatal("an unconfirmed Cancel canceled the run")
	}
	// The canceled run's page has no action left.
	if err := chromedp.Do(b, chromedp.Click(`form.cancel input[name="confirm"]`), chromedp.Click(`form.cancel button`),
		chromedp.WaitNotPresent(`form.cancel`)); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if r := getRun(t, st, run.ID); r.State != store.RunCanceled || r.CanceledBeforeSubmit != 5 {
		t.Fatalf("after Cancel: state %s, %d canceled before submission", r.State, r.CanceledBeforeSubmit)
	}
	if n, err := chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll('form[method="post"]').length`)); err != nil || n != 0 {
		t.Errorf("a canceled run's page offers %d forms (%v)", n, err)
	}
	testbrowser.Screenshot(t, b, filepath.Join(dir, "run-canceled.png"))
}
