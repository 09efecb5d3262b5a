package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/refonte-ai/refonte-batch/internal/testbrowser"
)

// TestConsoleLiveInBrowser opens the runs console of a `worker -dev`
// process in headless Chromium while a batch submitted by the enqueue
// program goes through: the run page's counters change without a reload
// (server-sent events) and, once the run is done, equal what
// `enqueue status -json` prints. Screenshots of both pages go to the
// test's temp dir; CONSOLE_README_PNG=PATH also saves the run page there
// while rows are still going (the README's screenshot is made this way).
func TestConsoleLiveInBrowser(t *testing.T) {
	suite(t)
	workerBin, _ := bin(t, progWorker), bin(t, progEnqueue) // built before the browser's clock starts
	b := testbrowser.New(t, 5*time.Minute)
	dir := t.TempDir()
	p := newProc(t, dir, "worker-dev", workerBin,
		[]string{"-dev", "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0", "-rate-limit", "10", "-rate-burst", "1"}, baseEnv())
	p.start()
	banner := waitBanner(t, p, 30*time.Second)
	consoleURL, redisURL, callbackURL := banner["Console"], banner["Redis (in-process)"], banner["Callback URL"]
	if !strings.HasPrefix(consoleURL, "http://127.0.0.1:") || redisURL == "" || callbackURL == "" {
		t.Fatalf("banner lacks the console, Redis or callback URL: %q", banner)
	}

	ds := writeDataset(t, dir, "console", scale(300, 200), 50)
	rows := ds.valid
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := runEnqueue(t, ctx, dir, "-type", "imageannotation", "-project", "demo", "-callback-url", callbackURL,
		"-rejects", ds.rejects, "-json", "-redis", redisURL, ds.path)
	var sub summary
	r.lastJSON(t, &sub)
	if r.code != 3 || sub.RunID == "" { // 3: some rows were rejected, as asked
		t.Fatalf("enqueue exit %d: %s", r.code, r.stderr)
	}

	// The runs list shows the run; its page then updates itself.
	if err := chromedp.Do(b, chromedp.Navigate(consoleURL), chromedp.WaitVisible(`a[href="/runs/`+sub.RunID+`"]`)); err != nil {
		t.Fatalf("runs list: %v", err)
	}
	testbrowser.Screenshot(t, b, filepath.Join(dir, "runs.png"))
	if err := chromedp.Do(b, chromedp.Navigate(consoleURL+"/"+sub.RunID), chromedp.WaitVisible("#status-h")); err != nil {
		t.Fatalf("run page: %v", err)
	}
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.__sameDocument = true`)); err != nil {
		t.Fatal(err)
	}
	count := func(name string) int64 {
		t.Helper()
		// One JavaScript read: a live update may replace the node between
		// a DOM query and a text read by node id ("No node with given id").
		s, err := chromedp.Run(b, chromedp.Evaluate[string](`(document.querySelector('#live [data-count="`+name+`"]') || {}).textContent || ""`))
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		s = strings.TrimSpace(s)
		n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
		if err != nil {
			t.Fatalf("%s shows %q", name, s)
		}
		return n
	}
	first := count("completed")
	if first >= int64(rows) {
		t.Fatalf("the run was done before the page could watch it (%d completed): raise the row count", first)
	}
	// Counters move, then reach every row, on the same document.
	var seen []int64
	shot := false
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c := count("completed")
		if len(seen) == 0 || seen[len(seen)-1] != c {
			seen = append(seen, c)
		}
		if c == int64(rows) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("completed went %v, never %d\n%s", seen, rows, p.tail(20))
		}
		if len(seen) == 2 && !shot {
			shot = true
			testbrowser.Screenshot(t, b, filepath.Join(dir, "run-during.png"))
			if out := os.Getenv("CONSOLE_README_PNG"); out != "" {
				testbrowser.Screenshot(t, b, out)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	same, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.__sameDocument === true`))
	if err != nil || !same {
		t.Fatalf("the page reloaded (same document: %v, %v)", same, err)
	}
	if len(seen) < 2 {
		t.Errorf("completed went %v: want it to change while the page watched", seen)
	}
	// Let the last update (state done) land, then compare with status -json.
	if err := chromedp.Do(b, chromedp.WaitVisible(`#live .st-done`)); err != nil {
		t.Fatalf("state done never shown: %v", err)
	}
	st := runEnqueue(t, ctx, dir, "status", "-json", "-redis", redisURL, sub.RunID)
	var status summary
	if err := json.Unmarshal(st.stdout, &status); err != nil || st.code != 0 {
		t.Fatalf("status -json: exit %d %v: %s %s", st.code, err, st.stdout, st.stderr)
	}
	for name, want := range map[string]int64{"rows": status.Rows, "valid": status.Valid, "invalid": status.Invalid,
		"enqueued": status.Enqueued, "duplicate": status.Duplicate, "submitted": status.Submitted,
		"completed": status.Completed, "failed": status.Failed, "canceled": status.Canceled} {
		if got := count(name); got != want {
			t.Errorf("page shows %s = %d, status -json %d", name, got, want)
		}
	}
	if status.Completed != int64(rows) {
		t.Errorf("status: %s", status)
	}
	testbrowser.Screenshot(t, b, filepath.Join(dir, "run.png"))
	t.Logf("completed seen live: %v", seen)
}

// waitBanner reads `worker -dev`'s banner from its stdout log until the
// Console line, and returns its "Name   value" lines.
func waitBanner(t *testing.T, p *proc, timeout time.Duration) map[string]string {
	t.Helper()
	line := regexp.MustCompile(`^  (\S.*?\S)\s{2,}(\S+)`)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out := map[string]string{}
		for _, path := range []string{p.stdoutPath, p.stderrPath} {
			f, err := os.Open(path)
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m := line.FindStringSubmatch(sc.Text()); m != nil {
					out[m[1]] = m[2]
				}
			}
			f.Close()
		}
		if out["Console"] != "" {
			return out
		}
		if p.exited() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no Console line in worker -dev's banner:\n%s", p.tail(30))
	return nil
}
