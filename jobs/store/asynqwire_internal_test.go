package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestTaskMessageBytesEqualAsynqClient pins our TaskMessage encoding to the
// bytes asynq.Client writes for the same task.
func TestTaskMessageBytesEqualAsynqClient(t *testing.T) {
	url := testredis.Fresh(t)
	rdb := testredis.ClientOn(t, url)
	cl := asynq.NewClientFromRedisClient(rdb)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		mode refonte.Mode
		uid  string
		opts []asynq.Option
		nj   func(*NewJob)
	}{
		{name: "default submit task", mode: refonte.ModeTest, uid: "a"},
		{name: "live", mode: refonte.ModeLive, uid: "b"},
		{name: "no retry, default timeout", mode: refonte.ModeTest, uid: "c",
			opts: []asynq.Option{asynq.MaxRetry(0), asynq.Timeout(0)},
			nj:   func(j *NewJob) { j.MaxRetry, j.Timeout = 0, 0 }},
		{name: "negative retry", mode: refonte.ModeTest, uid: "d",
			opts: []asynq.Option{asynq.MaxRetry(-3)},
			nj:   func(j *NewJob) { j.MaxRetry = -3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := jobs.SubmitPayload{Run: "r1", Line: 7, UniqueID: tc.uid, TaskType: refonte.TypeImageAnnotation,
				Mode: tc.mode, Params: []byte(`{"attachment":"https://x/y.png"}`)}
			task, err := jobs.NewSubmitTask(p)
			if err != nil {
				t.Fatal(err)
			}
			info, err := cl.EnqueueContext(ctx, task, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			want, err := rdb.HGet(ctx, asynqTaskKey(info.Queue, info.ID), "msg").Bytes()
			if err != nil {
				t.Fatal(err)
			}
			nj := NewJob{AsynqType: task.Type(), Payload: task.Payload(), Queue: jobs.Queue(tc.mode),
				TaskID: jobs.TaskID(tc.mode, tc.uid), MaxRetry: jobs.DefaultMaxRetry, Timeout: jobs.DefaultTimeout}
			if tc.nj != nil {
				tc.nj(&nj)
			}
			if got := appendTaskMessage(nil, &nj); !bytes.Equal(got, want) {
				t.Fatalf("encoding differs from asynq.Client's:\n got %x\nwant %x", got, want)
			}
		})
	}
}
