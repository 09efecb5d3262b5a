package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/app/console"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// post sends a form POST with the header pairs hdr and returns the status,
// the Location header and the body.
func post(t testing.TB, h http.Handler, path string, form url.Values, hdr ...string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Header().Get("Location"), string(b)
}

// steering returns a console with actions on st.
func steering(t testing.TB, st *store.Store, opts console.Options) *console.Server {
	t.Helper()
	rdb := testredis.Client(t)
	opts.Client = asynq.NewClientFromRedisClient(rdb)
	opts.Inspector = asynq.NewInspectorFromRedisClient(rdb)
	return newConsole(t, st, opts)
}

func getRun(t testing.TB, st *store.Store, id string) *store.Run {
	t.Helper()
	r, err := st.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestActions: the run page's POSTs pause, resume and cancel the run with
// the CLI's rules; a cancel needs its confirmation; a finished run answers
// 409, an unknown one 404.
func TestActions(t *testing.T) {
	st := newStore(t)
	c := steering(t, st, console.Options{})
	yes := url.Values{"confirm": {"yes"}}
	tests := []struct {
		name     string
		rows     int
		done     bool // every row completed first
		steps    []string
		form     url.Values
		wantCode int
		check    func(t *testing.T, r *store.Run)
	}{
		{"pause", 3, false, []string{"pause"}, nil, http.StatusSeeOther, func(t *testing.T, r *store.Run) {
			if !r.OperatorPaused || r.State != store.RunPaused || r.PausedReason != store.OperatorPausedReason {
				t.Errorf("after pause: state %s paused %v reason %q", r.State, r.OperatorPaused, r.PausedReason)
			}
		}},
		{"pause then resume", 3, false, []string{"pause", "resume"}, nil, http.StatusSeeOther, func(t *testing.T, r *store.Run) {
			if r.OperatorPaused || r.State == store.RunPaused {
				t.Errorf("after resume: state %s paused %v", r.State, r.OperatorPaused)
			}
		}},
		{"cancel without the confirmation", 3, false, []string{"cancel"}, url.Values{"tasks": {"yes"}}, http.StatusBadRequest, func(t *testing.T, r *store.Run) {
			if r.State == store.RunCanceled || !r.CancelRequestedAt.IsZero() || r.Canceled != 0 {
				t.Errorf("canceled without confirmation: state %s canceled %d", r.State, r.Canceled)
			}
		}},
		{"cancel", 3, false, []string{"cancel"}, yes, http.StatusSeeOther, func(t *testing.T, r *store.Run) {
			if r.State != store.RunCanceled || r.CanceledBeforeSubmit != 3 || r.CancelTasks {
				t.Errorf("after cancel: state %s canceled before submit %d, tasks %v", r.State, r.CanceledBeforeSubmit, r.CancelTasks)
			}
		}},
		{"cancel with tasks", 2, false, []string{"cancel"}, url.Values{"confirm": {"yes"}, "tasks": {"yes"}}, http.StatusSeeOther, func(t *testing.T, r *store.Run) {
			if r.State != store.RunCanceled || !r.CancelTasks {
				t.Errorf("after cancel -tasks: state %s tasks %v", r.State, r.CancelTasks)
			}
		}},
		{"pause a finished run", 1, true, []string{"pause"}, nil, http.StatusConflict, func(t *testing.T, r *store.Run) {
			if r.State != store.RunDone || r.OperatorPaused {
				t.Errorf("finished run changed: state %s paused %v", r.State, r.OperatorPaused)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var outs []func(string) error
			if tc.done {
				for range tc.rows {
					outs = append(outs, completed(st, refonte.ModeTest))
				}
			}
			run := seedRun(t, st, &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", CreatedAt: time.Now()}, tc.rows, outs...)
			var code int
			var loc string
			for _, step := range tc.steps {
				code, loc, _ = post(t, c, "/runs/"+run.ID+"/"+step, tc.form)
			}
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d", code, tc.wantCode)
			}
			last := tc.steps[len(tc.steps)-1]
			if code == http.StatusSeeOther && loc != "/runs/"+run.ID+"?did="+last {
				t.Errorf("Location %q", loc)
			}
			tc.check(t, getRun(t, st, run.ID))
		})
	}
	if code, _, _ := post(t, c, "/runs/no-such-run/pause", nil); code != http.StatusNotFound {
		t.Errorf("unknown run: %d, want 404", code)
	}
}

// TestActionsJSON: a client asking for JSON gets the action's result.
func TestActionsJSON(t *testing.T) {
	st := newStore(t)
	c := steering(t, st, console.Options{})
	run := seedRun(t, st, &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", CreatedAt: time.Now()}, 4)
	code, _, body := post(t, c, "/runs/"+run.ID+"/cancel", url.Values{"confirm": {"yes"}}, "Accept", "application/json")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var res struct {
		State  store.RunState `json:"state"`
		Cancel struct {
			CanceledNow int64 `json:"canceled_now"`
		} `json:"cancel"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if res.State != store.RunCanceled || res.Cancel.CanceledNow != 4 {
		t.Errorf("answer %s", body)
	}
}

// TestActionsRefused: a cross-site POST (CSRF), a POST without the token
// and a POST to a read-only console change nothing.
func TestActionsRefused(t *testing.T) {
	st := newStore(t)
	const token = "steer-token"
	locked := steering(t, st, console.Options{Token: refonte.Secret(token)})
	readOnly := newConsole(t, st, console.Options{})
	auth := "Bearer " + token
	tests := []struct {
		name string
		h    http.Handler
		hdr  []string
		want int
	}{
		{"cross-site fetch", locked, []string{"Authorization", auth, "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"same-site other origin", locked, []string{"Authorization", auth, "Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"foreign Origin, no Sec-Fetch-Site", locked, []string{"Authorization", auth, "Origin", "http://evil.example"}, http.StatusForbidden},
		{"no token", locked, []string{"Sec-Fetch-Site", "same-origin"}, http.StatusUnauthorized},
		{"read-only console", readOnly, []string{"Sec-Fetch-Site", "same-origin"}, http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := seedRun(t, st, &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", CreatedAt: time.Now()}, 2)
			code, _, _ := post(t, tc.h, "/runs/"+run.ID+"/pause", nil, tc.hdr...)
			if code != tc.want {
				t.Errorf("status %d, want %d", code, tc.want)
			}
			if r := getRun(t, st, run.ID); r.OperatorPaused {
				t.Error("the run was paused")
			}
		})
	}
	// The same request from the console's own page goes through.
	run := seedRun(t, st, &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", CreatedAt: time.Now()}, 2)
	if code, _, body := post(t, locked, "/runs/"+run.ID+"/pause", nil, "Authorization", auth, "Sec-Fetch-Site", "same-origin"); code != http.StatusSeeOther {
		t.Errorf("same-origin POST: %d %s", code, body)
	}
}

// TestActionForms: an active run's page offers pause (or resume) and a
// cancel that needs its box ticked; a finished run's page and a read-only
// console offer none.
func TestActionForms(t *testing.T) {
	st := newStore(t)
	c := steering(t, st, console.Options{})
	readOnly := newConsole(t, st, console.Options{})
	active := seedRun(t, st, &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", CreatedAt: time.Now()}, 2)
	done := seedRun(t, st, &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", CreatedAt: time.Now()}, 1, completed(st, refonte.ModeTest))
	tests := []struct {
		name    string
		h       http.Handler
		id      string
		want    []string
		notWant []string
	}{
		{"active", c, active.ID, []string{`action="/runs/` + active.ID + `/pause"`, `action="/runs/` + active.ID + `/cancel"`,
			`name="confirm" value="yes" required`, `name="tasks"`}, []string{"/resume\""}},
		{"finished", c, done.ID, nil, []string{`method="post"`}},
		{"read-only", readOnly, active.ID, nil, []string{`method="post"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := get(t, tc.h, "/runs/"+tc.id)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %s", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page has %s", w)
				}
			}
		})
	}
	if code, _, _ := post(t, c, "/runs/"+active.ID+"/pause", nil); code != http.StatusSeeOther {
		t.Fatal(code)
	}
	code, body, _ := get(t, c, "/runs/"+active.ID+"?did=pause")
	if code != http.StatusOK || !strings.Contains(body, `action="/runs/`+active.ID+`/resume"`) || !strings.Contains(body, "Paused:") {
		t.Errorf("paused run's page: %d, resume form or notice missing", code)
	}
}

// TestPriorityShown: the run page names every run's priority (normal for
// runs older than -priority); the runs list marks the runs that are not
// normal.
func TestPriorityShown(t *testing.T) {
	st := newStore(t)
	c := newConsole(t, st, console.Options{})
	tests := []struct {
		stored, page string
		listed       bool
	}{
		{"high", "high", true},
		{"low", "low", true},
		{"normal", "normal", false},
		{"", "normal", false},
	}
	for _, tc := range tests {
		t.Run("stored "+tc.stored, func(t *testing.T) {
			run := seedRun(t, st, &store.Run{ID: store.NewRunID(time.Now()), Dataset: "p.jsonl", Priority: tc.stored, CreatedAt: time.Now()}, 1)
			_, body, _ := get(t, c, "/runs/"+run.ID)
			if !strings.Contains(body, "<dt>Priority</dt><dd>"+tc.page+"</dd>") {
				t.Errorf("run page does not name priority %s", tc.page)
			}
			_, list, _ := get(t, c, "/runs")
			row := list[strings.Index(list, `href="/runs/`+run.ID+`"`):]
			row = row[:strings.Index(row, "</tr>")]
			if got := strings.Contains(row, tc.page+" priority"); got != tc.listed {
				t.Errorf("runs list marks %q: %v, want %v", tc.page, got, tc.listed)
			}
		})
	}
}
