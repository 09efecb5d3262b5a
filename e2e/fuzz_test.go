package e2e

// Fuzz targets for the exported parsers of outside input that had none in
// their own packages (FuzzReadCSV, FuzzReadJSONL, FuzzParseCallback,
// FuzzCallbackHandler and the sandbox's FuzzAPI already exist there). Their
// seeds run with every go test; fuzz one with e.g.
//
//	go test -run '^$' -fuzz '^FuzzValidateTaskParams$' -fuzztime 30s ./e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	jobsworker "github.com/refonte-ai/refonte-batch/app/worker"
	"github.com/refonte-ai/refonte-batch/jobs"
	jobsdataset "github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// FuzzValidateTaskParams: the shared per-type rules never panic on any
// JSON params; every error is a *ParamError matching ErrInvalidParams, and
// only known task types validate.
func FuzzValidateTaskParams(f *testing.F) {
	for _, s := range []struct{ typ, params string }{
		{"imageannotation", `{"attachment":"https://x/1.jpg","geometries":{"box":{"objects_to_annotate":["car"]}}}`},
		{"imageannotation", `{"attachment":"ftp://x","geometries":{"box":{"objects_to_annotate":[]}}}`},
		{"categorization", `{"attachment":"https://x","categories":["a","b"]}`},
		{"categorization", `{"attachment":"https://x","taxonomies":{"t":{"type":"category","choices":["a"]}}}`},
		{"textcollection", `{"attachments":[{"type":"text","content":"x"}],"fields":[{"type":"text","field_id":"f"}]}`},
		{"documenttranscription", `{"attachment":"http://x/doc.pdf","metadata":[1]}`},
		{"segmentannotation", `{"attachment":"https://x","labels":["road",""],"priority":"high","tags":[1]}`},
		{"nope", `{}`},
		{"imageannotation", `{"attachment":null,"geometries":{"box":null},"unique_id":"a\nb","callback_url":"javascript:x"}`},
	} {
		f.Add(s.typ, []byte(s.params))
	}
	f.Fuzz(func(t *testing.T, typ string, raw []byte) {
		var params refonte.TaskParams
		if json.Unmarshal(raw, &params) != nil || params == nil {
			return
		}
		err := refonte.ValidateTaskParams(refonte.TaskType(typ), params)
		if err == nil {
			if _, perr := refonte.ParseTaskType(typ); perr != nil {
				t.Fatalf("unknown type %q validated", typ)
			}
			return
		}
		var pe *refonte.ParamError
		if !errors.Is(err, refonte.ErrInvalidParams) && !errors.As(err, &pe) {
			// An unknown type may be reported with another error; a known one must not.
			if _, perr := refonte.ParseTaskType(typ); perr == nil {
				t.Fatalf("error %v for a known type is neither a *ParamError nor ErrInvalidParams", err)
			}
		}
	})
}

// FuzzModeAndNames: ModeOf, ParseMode and ParseTaskType accept exactly
// what they document, and ModeOf's error never depends on (so never shows)
// the key.
func FuzzModeAndNames(f *testing.F) {
	for _, s := range []string{"", "test_", "test_x", "live_abc", "Test_x", "live", "test", "imageannotation", "x\x00", "live_\n"} {
		f.Add(s)
	}
	_, errEmpty := refonte.ModeOf("")
	_, errOther := refonte.ModeOf("x")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := refonte.ModeOf(s)
		switch {
		case err != nil:
			if !errors.Is(err, refonte.ErrInvalidKey) {
				t.Fatalf("ModeOf error %v does not match ErrInvalidKey", err)
			}
			if e := err.Error(); e != errEmpty.Error() && e != errOther.Error() {
				t.Fatalf("ModeOf's error depends on the key: %q", e)
			}
		case m == refonte.ModeTest && !strings.HasPrefix(s, "test_"), m == refonte.ModeLive && !strings.HasPrefix(s, "live_"):
			t.Fatalf("ModeOf(%q) = %s", s, m)
		case m != refonte.ModeTest && m != refonte.ModeLive:
			t.Fatalf("ModeOf(%q) = %q", s, m)
		}
		if m, err := refonte.ParseMode(s); (err == nil) != (s == "test" || s == "live") || (err == nil && string(m) != s) {
			t.Fatalf("ParseMode(%q) = %q, %v", s, m, err)
		}
		if typ, err := refonte.ParseTaskType(s); err == nil && !slices.Contains(refonte.TaskTypes(), typ) {
			t.Fatalf("ParseTaskType(%q) = %q, not a known type", s, typ)
		}
	})
}

// FuzzVerifyCallbackAuth: true exactly for one header value equal to a
// non-empty key.
func FuzzVerifyCallbackAuth(f *testing.F) {
	f.Add("secret", "secret", false)
	f.Add("secret", "secreT", false)
	f.Add("", "", false)
	f.Add("k", "k", true)
	f.Fuzz(func(t *testing.T, key, got string, twice bool) {
		h := http.Header{}
		h.Set(refonte.CallbackAuthHeader, got)
		if twice {
			h.Add(refonte.CallbackAuthHeader, got)
		}
		want := key != "" && got == key && !twice
		if ok := refonte.VerifyCallbackAuth(h, refonte.Secret(key)); ok != want {
			t.Fatalf("VerifyCallbackAuth(key %q, header %q twice=%v) = %v, want %v", key, got, twice, ok, want)
		}
	})
}

// FuzzSubmitPayload: DecodeSubmitPayload never panics, and what it
// accepts re-encodes (json.Marshal and the producer's AppendSubmitPayload,
// byte for byte the same) to a payload that decodes to the same value.
func FuzzSubmitPayload(f *testing.F) {
	f.Add([]byte(`{"v":1,"run":"r1","line":3,"unique_id":"u","task_type":"imageannotation","mode":"test","params":{"attachment":"https://x"}}`))
	f.Add([]byte(`{"v":1,"run":"r<1>&","line":-1,"unique_id":"é\u2028","task_type":"categorization","mode":"live","params":{}}`))
	f.Add([]byte(`{"v":2,"run":"r","unique_id":"u","task_type":"x","mode":"test"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := jobs.DecodeSubmitPayload(b)
		if err != nil {
			if !errors.Is(err, jobs.ErrBadPayload) {
				t.Fatalf("error %v does not match ErrBadPayload", err)
			}
			return
		}
		if len(p.Params) > 0 {
			// AppendSubmitPayload copies Params as is and documents them as
			// json.Marshal produces them: compact and HTML-escaped, which is
			// what marshaling a RawMessage gives.
			norm, err := json.Marshal(p.Params)
			if err != nil {
				return
			}
			p.Params = norm
			var obj map[string]any
			if json.Unmarshal(p.Params, &obj) != nil || obj == nil {
				return // AppendSubmitPayload documents Params as a JSON object
			}
		}
		marshaled, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		appended := jobs.AppendSubmitPayload(nil, p)
		if len(p.Params) > 0 && !bytes.Equal(marshaled, appended) {
			t.Fatalf("AppendSubmitPayload differs from json.Marshal:\n%s\n%s", appended, marshaled)
		}
		q, err := jobs.DecodeSubmitPayload(appended)
		if err != nil {
			t.Fatalf("re-encoded payload %s does not decode: %v", appended, err)
		}
		if len(p.Params) == 0 {
			p.Params = json.RawMessage(`{}`)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: %+v, want %+v", q, p)
		}
	})
}

// FuzzWorkerLoadConfig: the worker's flags and environment never panic
// LoadConfig, and neither its errors nor the printed Config show a key.
func FuzzWorkerLoadConfig(f *testing.F) {
	f.Add("-concurrency 10 -listen 127.0.0.1:0 -rate-limit 5", "test_a", "live_b", "cb", "redis://127.0.0.1:1/0", "http://127.0.0.1:2/v1")
	f.Add("-rate-limit -1 -callback-grace 0s", "live_a", "test_b", "", "rediss://x", "ftp://x")
	f.Add("-concurrency 0 extra", "test_", "", "k", "", "")
	f.Add("-live-daily-limit -5 -shutdown-timeout x", "x", "live_x", "k", "redis-sentinel://h:1?master=m", "")
	const marker = "Zq9SECRETx"
	f.Fuzz(func(t *testing.T, args, testKey, liveKey, cbKey, redisURL, apiURL string) {
		env := map[string]string{"REDIS_URL": redisURL, "REFONTE_API_URL": apiURL}
		for name, v := range map[string]string{"REFONTE_TEST_API_KEY": testKey, "REFONTE_LIVE_API_KEY": liveKey, "REFONTE_CALLBACK_AUTH_KEY": cbKey} {
			if v != "" {
				env[name] = v + marker
			}
		}
		cfg, err := jobsworker.LoadConfig(strings.Fields(args), func(k string) string { return env[k] }, io.Discard)
		if err != nil && strings.Contains(err.Error(), marker) {
			t.Fatalf("LoadConfig's error shows a key: %v", err)
		}
		if s := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.CallbackAuthKey); strings.Contains(s, marker) {
			t.Fatalf("the printed Config shows a key: %s", s)
		}
	})
}

// FuzzParseSubmit: enqueue's command line never panics; an accepted one
// names a dataset and a known mode.
func FuzzParseSubmit(f *testing.F) {
	f.Add("-type imageannotation -project p data.jsonl", "")
	f.Add("-mode live -max-live-tasks -1 - -format csv", "http://cb")
	f.Add("data.csv -dry-run -wait", "ftp://x")
	f.Add("-- -x.jsonl", "")
	f.Fuzz(func(t *testing.T, args, callbackURL string) {
		fields := strings.Fields(args)
		for _, a := range fields {
			if strings.Contains(a, "params") {
				return // -params reads a file; not this target's business
			}
		}
		env := map[string]string{"REFONTE_CALLBACK_URL": callbackURL}
		cfg, err := enqueue.ParseSubmit(fields, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			return
		}
		if cfg.Dataset == "" || (cfg.Mode != refonte.ModeTest && cfg.Mode != refonte.ModeLive) || cfg.Rejects == "" {
			t.Fatalf("accepted %q with dataset %q mode %q rejects %q", args, cfg.Dataset, cfg.Mode, cfg.Rejects)
		}
	})
}

// FuzzOpenGzipDataset: jobs/dataset.OpenFile on any .gz file never panics;
// reading stops with an error or EOF (bounded, against gzip bombs).
func FuzzOpenGzipDataset(f *testing.F) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(`{"attachment":"https://x/1.jpg"}` + "\n"))
	w.Close()
	f.Add(gz.Bytes())
	f.Add(gz.Bytes()[:len(gz.Bytes())/2])
	f.Add([]byte("not gzip"))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "d.jsonl.gz")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		rc, err := jobsdataset.OpenFile(path)
		if err != nil {
			return
		}
		defer rc.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(rc, 8<<20))
	})
}

// FuzzSandboxFaults: POST /_sandbox/faults bodies never panic the decoder,
// and accepted faults are in range and survive a JSON round trip.
func FuzzSandboxFaults(f *testing.F) {
	f.Add([]byte(`{"error_rate":0.2,"lost_response_rate":0.1,"rate_limit":100,"latency":"20ms"}`))
	f.Add([]byte(`{"down_for":"30s"}`))
	f.Add([]byte(`{"latency":-1,"callback_dup_rate":2}`))
	f.Add([]byte(`{"latency":1e99,"down_for":9223372036854775807}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fl sandbox.Faults
		if json.Unmarshal(b, &fl) != nil {
			return
		}
		for _, r := range []float64{fl.ErrorRate, fl.LostResponseRate, fl.CallbackDropRate, fl.CallbackDupRate, fl.CallbackEarlyRate} {
			if r < 0 || r > 1 {
				t.Fatalf("accepted a probability out of [0,1]: %+v", fl)
			}
		}
		if fl.RateLimit < 0 || fl.Latency < 0 {
			t.Fatalf("accepted a negative rate or latency: %+v", fl)
		}
		out, err := json.Marshal(fl)
		if err != nil {
			t.Fatal(err)
		}
		var again sandbox.Faults
		if err := json.Unmarshal(out, &again); err != nil || again != fl {
			t.Fatalf("round trip of %s: %+v (%v), want %+v", out, again, err, fl)
		}
	})
}

// FuzzClientResponse: the API client never panics on any answer of the
// server (status, Retry-After, body); an error answer gives a *refonte.Error
// with that status, a Retry-After that is never negative, and a message
// that never shows the API key; a 2xx answer gives a task or an error.
func FuzzClientResponse(f *testing.F) {
	f.Add(200, "", []byte(`{"task_id":"t1","status":"pending","type":"imageannotation"}`))
	f.Add(429, "3", []byte(`{"status_code":429,"error":"slow down"}`))
	f.Add(503, "Wed, 21 Oct 2015 07:28:00 GMT", []byte(`<html>bad gateway</html>`))
	f.Add(400, "-1", []byte(`{"error":"test_FUZZSECRETkey is not valid"}`))
	f.Add(409, "", []byte(`{"error":"duplicate unique_id"}`))
	f.Add(200, "", []byte(`not json`))
	f.Add(500, "1e9", []byte{})
	const key = "test_FUZZSECRETkey"
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		if status < 200 || status > 599 || bytes.Contains(body, []byte(key)) || strings.IndexFunc(retryAfter, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			return
		}
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write(body)
		}))
		defer ts.Close()
		client, err := refonte.NewClient(key, refonte.WithBaseURL(ts.URL+"/v1"), refonte.WithRetry(refonte.RetryPolicy{Disabled: true}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		task, err := client.GetTask(ctx, "t1")
		switch {
		case status < 300 && err == nil && task == nil:
			t.Fatalf("status %d: no task and no error", status)
		case status >= 400 && err == nil:
			t.Fatalf("status %d: no error", status)
		}
		if err == nil {
			return
		}
		if strings.Contains(fmt.Sprintf("%v %+v", err, err), key) {
			t.Fatalf("the error shows the API key: %v", err)
		}
		if d, ok := refonte.RetryAfter(err); ok && d < 0 {
			t.Fatalf("Retry-After %q gave a negative delay %v", retryAfter, d)
		}
		var apiErr *refonte.Error
		if status >= 400 && (!errors.As(err, &apiErr) || apiErr.StatusCode != status) {
			t.Fatalf("status %d: error %v is not a *refonte.Error with that status", status, err)
		}
	})
}
