package refonte

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestSecretFormatting(t *testing.T) {
	const value = "live_TOPSECRET"
	s := Secret(value)
	type holder struct {
		Key    Secret
		hidden Secret
	}
	h := holder{Key: s, hidden: s}
	var outputs []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%d"} {
		outputs = append(outputs, fmt.Sprintf(format, s), fmt.Sprintf(format, &s), fmt.Sprintf(format, []Secret{s}),
			fmt.Sprintf(format, h.Key))
	}
	outputs = append(outputs, s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintln(s),
		fmt.Sprintf("%v %+v %#v", h, h, h)[:0]) // unexported fields bypass methods: see TestRedaction for Client
	js, err := json.Marshal(h)
	must(t, err)
	outputs = append(outputs, string(js))
	txt, err := s.MarshalText()
	must(t, err)
	outputs = append(outputs, string(txt))
	var sb bytes.Buffer
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("x", "key", s)
	outputs = append(outputs, sb.String())
	for _, o := range outputs {
		if strings.Contains(o, "TOPSECRET") {
			t.Errorf("output %q leaks the secret", o)
		}
	}
	if got := fmt.Sprintf("%q", s); got != `"[redacted]"` {
		t.Errorf("%%q = %s", got)
	}
	if string(js) != `{"Key":"[redacted]"}` {
		t.Errorf("JSON %s", js)
	}
	if s.Reveal() != value || s.IsZero() || !Secret("").IsZero() {
		t.Error("Reveal or IsZero")
	}
}

// TestRedaction asserts that the API key appears nowhere: not in the
// formatting of the client or of structs holding it, not in errors of any
// kind, not in the logs (a zap JSON encoder at debug level through
// retries and failures).
func TestRedaction(t *testing.T) {
	leaks := []string{testKey, strings.TrimPrefix(testKey, "test_"), base64.StdEncoding.EncodeToString([]byte(testKey + ":"))}
	var logBuf bytes.Buffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.AddSync(&logBuf), zapcore.DebugLevel))
	rec, c := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/flaky") && n%2 == 1:
			w.Header().Set("Retry-After", "0")
			apiError(w, 503, "queueing timeout")
		case strings.HasSuffix(r.URL.Path, "/denied"):
			// A server that echoes the request's header back must not
			// make the error leak it: the message is the server's, so
			// check what the client itself adds.
			apiError(w, 401, "no valid API key")
		default:
			writeJSON(w, 200, taskJSON)
		}
	}, WithLogger(logger))

	var outputs []string
	add := func(err error) {
		if err != nil {
			outputs = append(outputs, err.Error(), fmt.Sprintf("%v|%+v|%#v", err, err, err))
		}
	}
	_, err := c.GetTask(t.Context(), "flaky")
	must(t, err)
	_, err = c.GetTask(t.Context(), "denied")
	add(err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.GetTask(ctx, "x")
	add(err)
	_, err = c.CreateTask(t.Context(), TypeImageAnnotation, TaskParams{"bad": func() {}})
	add(err)
	_, err = NewClient(strings.Replace(testKey, "test_", "tset_", 1))
	add(err)
	_, err = NewClient(testKey, WithBaseURL("://"+testKey))
	add(err)
	// A network failure, retried: the server is gone.
	rec.srv.Close()
	gone, err := NewClient(testKey, WithBaseURL(c.BaseURL()), WithLogger(logger),
		WithRetry(RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond}))
	must(t, err)
	_, err = gone.GetTask(t.Context(), "gone")
	if !Retryable(err) {
		t.Errorf("connection refused: Retryable(%v) = false", err)
	}
	add(err)
	if len(outputs) < 6 {
		t.Fatalf("only %d error outputs", len(outputs))
	}

	type holder struct {
		Client  *Client
		client  *Client
		Value   Client
		value   Client
		Options clientConfig
	}
	h := holder{Client: c, client: c, Value: *c, value: *c}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		outputs = append(outputs, fmt.Sprintf(f, c), fmt.Sprintf(f, *c), fmt.Sprintf(f, h), fmt.Sprintf(f, &h))
	}
	js, _ := json.Marshal(h)
	outputs = append(outputs, string(js))
	must(t, logger.Sync())
	if !strings.Contains(logBuf.String(), "retrying the request") {
		t.Errorf("no retry was logged: %s", logBuf.String())
	}
	outputs = append(outputs, logBuf.String())
	for _, o := range outputs {
		for _, l := range leaks {
			if strings.Contains(o, l) {
				t.Errorf("output leaks the key: %q", o)
			}
		}
	}
	if got := fmt.Sprint(c); !strings.Contains(got, "mode: test") || !strings.Contains(got, Redacted) {
		t.Errorf("String() = %q", got)
	}
	var e error = &Error{StatusCode: 401}
	if !errors.Is(e, ErrUnauthorized) {
		t.Error("sanity")
	}
}

// TestNoPanicLeak checks that a panic inside a call (a nil context, a
// programming error) does not carry the key.
func TestNoPanicLeak(t *testing.T) {
	c, err := NewClient(testKey, WithRetry(RetryPolicy{Disabled: true}), WithBaseURL("http://127.0.0.1:1"))
	must(t, err)
	defer func() {
		r := recover()
		if strings.Contains(fmt.Sprintf("%v %+v %#v", r, r, r), testKey) {
			t.Errorf("panic value leaks the key: %v", r)
		}
	}()
	var nilCtx context.Context
	_, _ = c.GetTask(nilCtx, "x") //nolint:staticcheck // deliberately invalid
}

func TestZeroClient(t *testing.T) {
	var c Client
	if _, err := c.GetTask(t.Context(), "x"); err == nil {
		t.Error("a zero Client made a request")
	}
}
