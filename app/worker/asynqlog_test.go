package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

func TestLostRecoveryRace(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{"recoverer: could not retry lease expired task: INTERNAL_ERROR: redis eval error: NOT FOUND", true},
		{"recoverer: could not move task to archive: INTERNAL_ERROR: redis eval error: NOT FOUND", true},
		{"recoverer: could not retry lease expired task: INTERNAL_ERROR: redis eval error: dial tcp 127.0.0.1:6379: connect: connection refused", false},
		{"recoverer: could not retry lease expired task: INTERNAL_ERROR: redis eval error: NOAUTH: NOT FOUND", false},
		{"recoverer: could not list lease expired tasks: NOT FOUND", false},
		{"Could not remove task id=x type=\"t\" from \"q\" err: INTERNAL_ERROR: redis eval error: NOT FOUND", false},
		{"NOT FOUND", false},
	} {
		if got := lostRecoveryRace(c.msg); got != c.want {
			t.Errorf("lostRecoveryRace(%q) = %v, want %v", c.msg, got, c.want)
		}
	}
}

// TestLostAcknowledgement: asynq's processor failing to acknowledge a task
// a failover took out of the active list (the lines of the e2e Sentinel
// scenario, verbatim) is recognized; its other failures are not.
func TestLostAcknowledgement(t *testing.T) {
	const line = `Could not remove task id=test:rb1_b01663e8f6f5cb9555eb3ffaa5379ee6 type="refonte:submit" from "asynq:{refonte-test}:active" err: INTERNAL_ERROR: redis eval error: NOT FOUND`
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{line + "; Will retry syncing", true},
		{line, true}, // the syncer's last try at shutdown
		{`Could not remove task id=x type="t" from "asynq:{q}:active" err: INTERNAL_ERROR: redis eval error: dial tcp 127.0.0.1:6379: connect: connection refused; Will retry syncing`, false},
		{`Could not move task id=x type="t" from "asynq:{q}:active" to "asynq:{q}:completed":  INTERNAL_ERROR: redis eval error: NOT FOUND`, false},
		{"recoverer: could not retry lease expired task: INTERNAL_ERROR: redis eval error: NOT FOUND", false},
		{"NOT FOUND", false},
	} {
		if got := lostAcknowledgement(c.msg); got != c.want {
			t.Errorf("lostAcknowledgement(%q) = %v, want %v", c.msg, got, c.want)
		}
	}
}

// TestAsynqRecoveryRaceIsDebug puts a real asynq server's recoverer in the
// state a lost race leaves (a lease-expired task another recoverer already
// took out of the active list): asynq's warning reaches asynqLogger, which
// logs it at debug level and counts it; asynq's other warnings stay
// warnings.
func TestAsynqRecoveryRaceIsDebug(t *testing.T) {
	redisURL := testredis.Fresh(t)
	rdb := testredis.ClientOn(t, redisURL)
	ctx := context.Background()
	const q = "race"
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	info, err := client.Enqueue(asynq.NewTask("noop", nil), asynq.Queue(q))
	if err != nil {
		t.Fatal(err)
	}
	// The task was fetched (out of pending, a lease) and its lease expired
	// long ago; another recoverer already took it out of the active list.
	pipe := rdb.TxPipeline()
	pipe.LRem(ctx, fmt.Sprintf("asynq:{%s}:pending", q), 0, info.ID)
	pipe.ZAdd(ctx, fmt.Sprintf("asynq:{%s}:lease", q), redis.Z{Score: float64(time.Now().Add(-2 * time.Minute).Unix()), Member: info.ID})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	core, logs := observer.New(zapcore.DebugLevel)
	races := prometheus.NewCounter(prometheus.CounterOpts{Name: "races"})
	lg := asynqLogger{SugaredLogger: zap.New(core).Sugar(), races: races}
	srv := asynq.NewServer(opt, asynq.Config{Queues: map[string]int{q: 1}, Logger: lg, LogLevel: asynq.DebugLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	waitFor(t, 10*time.Second, "the recoverer's NOT FOUND", func() (bool, string) {
		return testutil.ToFloat64(races) == 1, fmt.Sprint(logs.All())
	})
	for _, e := range logs.All() {
		if e.Level >= zapcore.WarnLevel {
			t.Errorf("asynq logged at %s: %s", e.Level, e.Message)
		}
	}
	if n := logs.FilterMessage(recovererRetryFailed + "INTERNAL_ERROR" + asynqScriptNotFound).FilterLevelExact(zapcore.DebugLevel).Len(); n != 1 {
		t.Errorf("%d debug lines of the lost race; want 1", n)
	}

	lg.Warn("recoverer: could not list lease expired tasks: connection refused")
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Errorf("another recoverer warning logged %d times at warn level; want once", n)
	}
}

// TestAsynqLinesDuringOutageAreDebug: while the Redis gate is closed,
// asynq's warnings and errors (the same outage, a dozen per server and
// probe) are debug lines; once it opens they keep their level.
func TestAsynqLinesDuringOutageAreDebug(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	down := true
	lg := asynqLogger{SugaredLogger: zap.New(core).Sugar(), races: prometheus.NewCounter(prometheus.CounterOpts{Name: "r"}),
		redisDown: func() bool { return down }}
	for _, d := range []bool{true, false} {
		down = d
		lg.Error("Failed to write server state data: WRONGPASS")
		lg.Warn("Lease reset failed")
		lg.Info("Starting processing")
	}
	var got []zapcore.Level
	for _, e := range logs.All() {
		got = append(got, e.Level)
	}
	want := []zapcore.Level{zapcore.DebugLevel, zapcore.DebugLevel, zapcore.InfoLevel, zapcore.ErrorLevel, zapcore.WarnLevel, zapcore.InfoLevel}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("levels %v, want %v", got, want)
	}
}
