// Package asynqwire is asynq's Redis format as the store writes it: the key
// names, the protobuf field numbers of asynq's TaskMessage, and the Lua half
// of asynq's enqueue script, so that enqueue can write a row's job record
// and its queued asynq task in one atomic script (store.AddJobs).
//
// It is a copy of asynq internals (internal/base's key names,
// internal/proto/asynq.proto, internal/rdb's enqueueCmd) and holds for
// exactly the asynq version AsynqVersion, which go.mod pins. The tests
// beside it check, on a real redis-server, that what this package writes is
// read by asynq's own Inspector and processed by its Server, and that a task
// asynq.Client wrote is recognised here (same bytes, same keys, never
// overwritten). TestPinnedAsynqVersion fails when go.mod moves to another
// asynq version: then compare asynq's internal/base/base.go (TaskKey,
// PendingKey, AllQueues), internal/proto/asynq.proto (TaskMessage) and
// internal/rdb/rdb.go (enqueueCmd) of the new version with this file, fix
// what changed, and update AsynqVersion.
package asynqwire

import (
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// AsynqVersion is the asynq module version this format is copied from.
const AsynqVersion = "v0.26.0"

// AllQueues is asynq's set of queue names (base.AllQueues).
const AllQueues = "asynq:queues"

// TaskKey is asynq's task hash key (base.TaskKey).
func TaskKey(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }

// PendingKey is asynq's pending list key (base.PendingKey).
func PendingKey(queue string) string { return "asynq:{" + queue + "}:pending" }

// DequeueQueue reports whether keys are those of asynq's dequeue script
// (rdb.Dequeue: the queue's pending, paused, active and lease keys, the
// only asynq script whose second key is a paused key) and returns the
// queue.
func DequeueQueue(keys []string) (string, bool) {
	if len(keys) != 4 || !strings.HasPrefix(keys[0], "asynq:{") || !strings.HasSuffix(keys[0], "}:pending") {
		return "", false
	}
	q := keys[0][len("asynq:{") : len(keys[0])-len("}:pending")]
	prefix := "asynq:{" + q + "}:"
	if keys[1] != prefix+"paused" || keys[2] != prefix+"active" || keys[3] != prefix+"lease" {
		return "", false
	}
	return q, true
}

// Field numbers of asynq's TaskMessage (internal/proto/asynq.proto).
const (
	pbType    protowire.Number = 1
	pbPayload protowire.Number = 2
	pbID      protowire.Number = 3
	pbQueue   protowire.Number = 4
	pbRetry   protowire.Number = 5
	pbTimeout protowire.Number = 8
)

// DefaultTimeout is the timeout asynq.Client applies to a task that has
// neither a timeout nor a deadline.
const DefaultTimeout = 30 * time.Minute

// Task is what the store writes of an asynq task: what asynq.NewTask and
// the options asynq.Queue, asynq.TaskID, asynq.MaxRetry and asynq.Timeout
// set (no deadline, unique lock, group, retention or headers).
type Task struct {
	Type     string
	Payload  []byte
	ID       string
	Queue    string
	MaxRetry int
	// Timeout 0 means DefaultTimeout, as with asynq.Client.
	Timeout time.Duration
}

// AppendMessage appends the protobuf TaskMessage that asynq.Client writes
// for t (field "msg" of the task hash). Fields are in field-number order and
// zero values are omitted, like proto.Marshal.
func AppendMessage(b []byte, t *Task) []byte {
	timeout := t.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	b = appendString(b, pbType, t.Type)
	if len(t.Payload) > 0 {
		b = protowire.AppendTag(b, pbPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, t.Payload)
	}
	b = appendString(b, pbID, t.ID)
	b = appendString(b, pbQueue, t.Queue)
	if t.MaxRetry > 0 { // asynq.MaxRetry treats a negative count as zero
		b = protowire.AppendTag(b, pbRetry, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int32(t.MaxRetry)))
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

// LuaEnqueue is the Lua half of asynq's enqueueCmd, to be prepended to a
// script that enqueues tasks. It defines two functions:
//
//	asynq_put_task(st, tk, pk, id, q, msg, ns)
//
// writes the pending task id of queue q (task hash key tk, pending list key
// pk, encoded TaskMessage msg, now in unix nanoseconds ns) unless its task
// hash exists, and returns whether it did; and
//
//	asynq_push_pending(st)
//
// then pushes the IDs written onto their pending lists, one LPUSH per queue
// in the order written (which is what one LPUSH per task gives). st is the
// caller's batch state, a table made by asynq_batch(queues_key) with
// queues_key AllQueues, which the script must declare in KEYS as it must
// every task and pending key.
const LuaEnqueue = `
local function asynq_batch(queues_key)
  return {queues_key = queues_key, queues = {}, pushes = {}, order = {}}
end
local function asynq_put_task(st, tk, pk, id, q, msg, ns)
  if not st.queues[q] then
    redis.call('SADD', st.queues_key, q)
    st.queues[q] = true
  end
  if redis.call('EXISTS', tk) == 1 then return false end
  redis.call('HSET', tk, 'msg', msg, 'state', 'pending', 'pending_since', ns)
  local ids = st.pushes[pk]
  if not ids then
    ids = {}
    st.pushes[pk] = ids
    st.order[#st.order + 1] = pk
  end
  ids[#ids + 1] = id
  return true
end
local function asynq_push_pending(st)
  for _, pk in ipairs(st.order) do
    redis.call('LPUSH', pk, unpack(st.pushes[pk]))
  end
end
`
