package store

// asynq v0.26's Redis format, written by AddJobs beside our job records so
// a row's record and its queued task are one atomic write. Pinned by the
// compatibility tests in asynqwire_test.go (a real asynq.Server processes
// what we write; bytes equal asynq.Client's): re-check them before moving
// to another asynq version.

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// asynqAllQueues is asynq's set of queue names (base.AllQueues).
const asynqAllQueues = "asynq:queues"

// asynqTaskKey is asynq's task hash key (base.TaskKey).
func asynqTaskKey(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }

// asynqPendingKey is asynq's pending list key (base.PendingKey).
func asynqPendingKey(queue string) string { return "asynq:{" + queue + "}:pending" }

// Field numbers of asynq's TaskMessage (internal/proto/asynq.proto).
const (
	pbType    protowire.Number = 1
	pbPayload protowire.Number = 2
	pbID      protowire.Number = 3
	pbQueue   protowire.Number = 4
	pbRetry   protowire.Number = 5
	pbTimeout protowire.Number = 8
)

// asynqDefaultTimeout is the timeout asynq.Client applies when a task has
// neither a timeout nor a deadline.
const asynqDefaultTimeout = 30 * time.Minute

// appendTaskMessage appends the protobuf TaskMessage that asynq.Client
// would write for a task with this type, payload, ID, queue, MaxRetry and
// Timeout, no deadline, headers, uniqueness, group or retention. Fields
// are in field-number order and zero values are omitted, like proto.Marshal.
func appendTaskMessage(b []byte, j *NewJob) []byte {
	timeout := j.Timeout
	if timeout == 0 {
		timeout = asynqDefaultTimeout
	}
	b = appendString(b, pbType, j.AsynqType)
	if len(j.Payload) > 0 {
		b = protowire.AppendTag(b, pbPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, j.Payload)
	}
	b = appendString(b, pbID, j.TaskID)
	b = appendString(b, pbQueue, j.Queue)
	if j.MaxRetry > 0 { // asynq.MaxRetry treats a negative count as zero
		b = protowire.AppendTag(b, pbRetry, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int32(j.MaxRetry)))
	}
	if secs := int64(timeout.Seconds()); secs != 0 {
		b = protowire.AppendTag(b, pbTimeout, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(secs))
	}
	return b
}

func appendString(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}
