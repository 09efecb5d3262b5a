package worker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store/asynqwire"
)

// dequeueCounter counts the dequeue scripts that reach Redis, by queue.
type dequeueCounter struct{ hi, lo atomic.Int64 }

func (d *dequeueCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (d *dequeueCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (d *dequeueCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) >= 7 && (cmd.Name() == "evalsha" || cmd.Name() == "eval") {
			keys := make([]string, 0, 4)
			for _, a := range args[3:7] {
				keys = append(keys, fmt.Sprint(a))
			}
			if q, ok := asynqwire.DequeueQueue(keys); ok {
				switch q {
				case "eq-hi":
					d.hi.Add(1)
				case "eq-lo":
					d.lo.Add(1)
				}
			}
		}
		return next(ctx, cmd)
	}
}

// TestEmptyQueuesSkipsAsynqDequeues runs asynq's own server through
// emptyQueues: the jobs of the lower queue all run while the empty higher
// queue is asked at most once per EmptyQueueTTL (not once per job), a job
// put in the higher queue then still runs within a fetch or two, and the
// order of priorities holds.
func TestEmptyQueuesSkipsAsynqDequeues(t *testing.T) {
	rdb := testredis.ClientOn(t, testredis.Fresh(t))
	var counts dequeueCounter
	rdb.AddHook(&counts)
	const jobs = 300
	var ran atomic.Int64
	hiRan := make(chan time.Time, 1)
	mux := asynq.NewServeMux()
	mux.HandleFunc("lo", func(context.Context, *asynq.Task) error { ran.Add(1); return nil })
	mux.HandleFunc("hi", func(context.Context, *asynq.Task) error { hiRan <- time.Now(); return nil })
	srv := asynq.NewServerFromRedisClient(newEmptyQueues(rdb, EmptyQueueTTL), asynq.Config{
		Concurrency: 4, Queues: map[string]int{"eq-hi": 2, "eq-lo": 1}, StrictPriority: true,
		Logger: asynqQuiet{}, LogLevel: asynq.FatalLevel,
	})
	client := asynq.NewClientFromRedisClient(rdb)
	for i := range jobs {
		if _, err := client.Enqueue(asynq.NewTask("lo", []byte(fmt.Sprint(i))), asynq.Queue("eq-lo")); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	deadline := time.Now().Add(60 * time.Second)
	for ran.Load() < jobs {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs ran", ran.Load(), jobs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	hi, lo := counts.hi.Load(), counts.lo.Load()
	// Once per TTL window, plus one per fetch loop that raced another.
	if most := int64(took/EmptyQueueTTL) + 1 + 4; hi > most || lo < jobs {
		t.Errorf("over %v: %d dequeues of the empty queue reached Redis (want at most %d), %d of the busy one (want >= %d)",
			took, hi, most, lo, jobs)
	}
	// A job in the queue that was empty runs soon after.
	put := time.Now()
	if _, err := client.Enqueue(asynq.NewTask("hi", nil), asynq.Queue("eq-hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-hiRan:
		t.Logf("%d jobs in %v with %d dequeues of the empty queue; the high job ran %v after its enqueue", jobs, took, hi, at.Sub(put))
	case <-time.After(30 * time.Second):
		t.Fatal("the job put in the queue found empty never ran")
	}
}

// asynqQuiet drops asynq's log lines.
type asynqQuiet struct{}

func (asynqQuiet) Debug(...any) {}
func (asynqQuiet) Info(...any)  {}
func (asynqQuiet) Warn(...any)  {}
func (asynqQuiet) Error(...any) {}
func (asynqQuiet) Fatal(...any) {}
