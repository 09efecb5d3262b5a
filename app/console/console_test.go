package console_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/app/console"
	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestAuth(t *testing.T) {
	st := newStore(t)
	const token = "s3cret-console-token"
	open := newConsole(t, st, console.Options{})
	locked := newConsole(t, st, console.Options{Token: refonte.Secret(token)})
	tests := []struct {
		name string
		h    http.Handler
		auth string
		want int
	}{
		{"no token configured", open, "", http.StatusOK},
		{"missing", locked, "", http.StatusUnauthorized},
		{"bearer", locked, "Bearer " + token, http.StatusOK},
		{"bearer lower-case scheme", locked, "bearer " + token, http.StatusOK},
		{"bearer wrong", locked, "Bearer " + token + "x", http.StatusUnauthorized},
		{"bearer prefix of the token", locked, "Bearer " + token[:5], http.StatusUnauthorized},
		{"basic, token as password", locked, basic("anyone", token), http.StatusOK},
		{"basic wrong password", locked, basic(token, "nope"), http.StatusUnauthorized},
		{"basic empty", locked, basic("", ""), http.StatusUnauthorized},
		{"other scheme", locked, "Token " + token, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/runs", "/static/console.css", "/runs/nope/results.jsonl"} {
				code, body, hdr := get(t, tc.h, path, "Authorization", tc.auth)
				if path != "/runs" && tc.want == http.StatusOK {
					if code == http.StatusUnauthorized {
						t.Errorf("%s: 401 with a good token", path)
					}
					continue
				}
				if code != tc.want {
					t.Errorf("%s: status %d, want %d", path, code, tc.want)
				}
				if strings.Contains(body, token) {
					t.Errorf("%s: the token is in the body", path)
				}
				if code == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("%s: 401 without a Basic challenge: %q", path, hdr.Get("WWW-Authenticate"))
				}
			}
		})
	}
}

// hostile is text that would run script or break out of attributes if
// it were rendered unescaped.
const hostile = `<script>alert("x")</script>"><img src=x onerror=alert(1)>`

func TestHostileTextRendersInert(t *testing.T) {
	st := newStore(t)
	m := refonte.ModeTest
	run := seedRun(t, st, &store.Run{Dataset: hostile + ".csv", Project: hostile, Batch: hostile,
		Type: refonte.TypeImageAnnotation}, 3,
		failed(st, m, hostile), completed(st, m))
	if err := st.SetPaused(context.Background(), run.ID, hostile); err != nil {
		t.Fatal(err)
	}
	c := newConsole(t, st, console.Options{})
	_, list, _ := get(t, c, "/runs")
	_, page, _ := get(t, c, "/runs/"+run.ID)
	_, missing, _ := get(t, c, "/runs/"+url404(hostile))
	ev := firstEvent(t, c, run.ID)
	for name, body := range map[string]string{"list": list, "run page": page, "404 page": missing, "events html": ev.HTML} {
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s renders the hostile text as markup", name)
		}
		if name != "404 page" && !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
			t.Errorf("%s does not show the hostile text escaped", name)
		}
	}
	// The only scripts are the console's own, which CSP pins to 'self'.
	if n := strings.Count(page, "<script"); n != 1 {
		t.Errorf("run page has %d script elements, want 1 (the console's)", n)
	}
}

func url404(s string) string {
	return strings.NewReplacer("<", "%3C", ">", "%3E", `"`, "%22", " ", "%20").Replace(s)
}

// firstEvent reads the first update of a run's events stream.
func firstEvent(t *testing.T, h http.Handler, runID string) struct {
	Status enqueue.StatusReport `json:"status"`
	HTML   string               `json:"html"`
} {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/runs/"+runID+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events Content-Type %q", ct)
	}
	var out struct {
		Status enqueue.StatusReport `json:"status"`
		HTML   string               `json:"html"`
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 4<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok && event == "update" {
			if err := json.Unmarshal([]byte(v), &out); err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	t.Fatalf("no update event: %v", sc.Err())
	return out
}

func TestRoutes(t *testing.T) {
	st := newStore(t)
	m := refonte.ModeTest
	run := seedRun(t, st, &store.Run{Dataset: "cats.csv", Project: "pets"}, 6,
		completed(st, m), failed(st, m, "bad attachment"), failed(st, m, "bad attachment"), failed(st, m, "no such project"))
	c := newConsole(t, st, console.Options{})
	tests := []struct {
		path     string
		code     int
		contains []string
	}{
		{"/", http.StatusFound, nil},
		{"/runs", http.StatusOK, []string{run.ID, "cats.csv", "pets"}},
		{"/runs?state=done", http.StatusOK, []string{"0 runs shown"}},
		{"/runs?mode=live", http.StatusOK, []string{"0 runs shown"}},
		{"/runs?project=pets&mode=test&state=running", http.StatusOK, []string{"1 run shown", run.ID}},
		{"/runs/" + run.ID, http.StatusOK, []string{"bad attachment", "no such project", `data-count="failed">3<`, "results.jsonl"}},
		{"/runs/r-unknown", http.StatusNotFound, []string{"No run r-unknown"}},
		{"/runs/r-unknown/events", http.StatusNotFound, nil},
		{"/runs/r-unknown/results.jsonl", http.StatusNotFound, nil},
		{"/runs/" + run.ID + "/results.csv", http.StatusNotFound, []string{"results.jsonl"}},
		{"/nope", http.StatusNotFound, nil},
		{"/static/console.js", http.StatusOK, []string{"EventSource"}},
	}
	for _, tc := range tests {
		code, body, hdr := get(t, c, tc.path)
		if code != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, code, tc.code)
		}
		for _, s := range tc.contains {
			if !strings.Contains(body, s) {
				t.Errorf("GET %s: body lacks %q", tc.path, s)
			}
		}
		if tc.path == "/" && hdr.Get("Location") != "/runs" {
			t.Errorf("GET /: Location %q", hdr.Get("Location"))
		}
		if hdr.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no CSP header", tc.path)
		}
	}

	// Downloads: every row, then one failure group's rows.
	lines := func(path string) []enqueue.ResultLine {
		t.Helper()
		code, body, _ := get(t, c, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		var out []enqueue.ResultLine
		for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
			var r enqueue.ResultLine
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("GET %s: line %q: %v", path, l, err)
			}
			out = append(out, r)
		}
		return out
	}
	if all := lines("/runs/" + run.ID + "/results.jsonl"); len(all) != 6 || all[0].State != "completed" {
		t.Errorf("results.jsonl = %+v, want 6 rows, the first completed", all)
	}
	_, page, _ := get(t, c, "/runs/"+run.ID)
	href := regexp.MustCompile(`href="(/runs/[^"]+results.jsonl\?group=bad[^"]*)"`).FindStringSubmatch(page)
	if href == nil {
		t.Fatal("no download link for the group \"bad attachment\"")
	}
	group := lines(html.UnescapeString(href[1]))
	if len(group) != 2 || group[0].Line != 2 || group[1].Line != 3 || group[0].Error != "bad attachment" {
		t.Errorf("group download = %+v, want lines 2 and 3", group)
	}
	// The live update carries the same numbers as `enqueue status -json`.
	ev := firstEvent(t, c, run.ID)
	if ev.Status.Counters != run.Counters || ev.Status.RunID != run.ID || !strings.Contains(ev.HTML, `data-count="completed">1<`) {
		t.Errorf("event = %+v, want the run's counters %+v", ev.Status, run.Counters)
	}
}

func TestBoundedOutputs(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	long := strings.Repeat("d", 100_000)
	for i := range 30 {
		if err := st.CreateRun(ctx, &store.Run{Dataset: fmt.Sprintf("%s-%d", long, i), Mode: refonte.ModeTest}); err != nil {
			t.Fatal(err)
		}
	}
	m := refonte.ModeTest
	outs := make([]func(string) error, 0, store.MaxFailureGroups+20)
	for i := range store.MaxFailureGroups + 20 {
		outs = append(outs, failed(st, m, fmt.Sprintf("error %d %s", i, strings.Repeat("e", 10_000))))
	}
	big := seedRun(t, st, &store.Run{Dataset: long}, len(outs), outs...)
	c := newConsole(t, st, console.Options{MaxRuns: 20})
	_, list, _ := get(t, c, "/runs")
	if n := strings.Count(list, `<tr class=`); n != 20 {
		t.Errorf("runs list shows %d runs, want MaxRuns = 20", n)
	}
	if !strings.Contains(list, "of the newest 20") {
		t.Error("runs list does not say it is cut at 20")
	}
	if len(list) > 200_000 {
		t.Errorf("runs list is %d bytes for 20 runs with 100 kB names", len(list))
	}
	_, page, _ := get(t, c, "/runs/"+big.ID)
	if n := strings.Count(page, `download>rows (JSONL)`); n != store.MaxFailureGroups+1 {
		t.Errorf("run page lists %d failure groups, want %d and other", n, store.MaxFailureGroups)
	}
	if !strings.Contains(page, "other messages") {
		t.Error("no group of other messages")
	}
	if len(page) > 100_000 {
		t.Errorf("run page is %d bytes", len(page))
	}
}

func TestSampleTimelines(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	m := refonte.ModeTest
	running := seedRun(t, st, &store.Run{Dataset: "a.csv"}, 2, completed(st, m))
	done := seedRun(t, st, &store.Run{Dataset: "b.csv"}, 1, completed(st, m))
	old := &store.Run{Dataset: "c.csv", Mode: m}
	if err := st.CreateRun(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := st.AbortRun(ctx, old.ID, "stopped"); err != nil {
		t.Fatal(err)
	}
	// Ten minutes later: the running run is sampled, the runs that ended
	// long before are not.
	if err := console.SampleTimelines(ctx, st, time.Now().Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want int
	}{{running.ID, 1}, {done.ID, 0}, {old.ID, 0}} {
		pts, err := st.Timeline(ctx, tc.id)
		if err != nil || len(pts) != tc.want {
			t.Errorf("run %s: %d points (%v), want %d", tc.id, len(pts), err, tc.want)
		}
	}
	pts, _ := st.Timeline(ctx, running.ID)
	if len(pts) == 1 && (pts[0].Completed != 1 || pts[0].Submitted != 1) {
		t.Errorf("point %+v, want the run's counters (1 submitted, 1 completed)", pts[0])
	}
}
