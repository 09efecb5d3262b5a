package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// KeptKind says why a callback was kept.
type KeptKind string

// Kinds of kept callbacks.
const (
	// KeptUnknown: the callback matched no job.
	KeptUnknown KeptKind = "unknown"
	// KeptConflict: the replay rule refused it (see Store.Complete).
	KeptConflict KeptKind = "conflict"
)

// KeptHeadBytes is how much of a kept callback's body is kept.
const KeptHeadBytes = 1024

// KeptCallback is what is kept of a callback that changed nothing: enough
// to tell which task it named, when, with what, and why it was kept; not
// its response (GET /task/{id} has it).
type KeptCallback struct {
	Kind KeptKind `json:"kind"`
	// Reason is why a conflicting delivery was refused.
	Reason     ConflictReason     `json:"reason,omitempty"`
	Mode       refonte.Mode       `json:"mode"`
	ReceivedAt time.Time          `json:"received_at"`
	TaskID     string             `json:"task_id"`
	UniqueID   string             `json:"unique_id,omitempty"`
	Status     refonte.TaskStatus `json:"status,omitempty"`
	// TaskTime is the task's own timestamp the delivery carried (its
	// updated_at, else completed_at); zero when it carried none.
	TaskTime time.Time `json:"task_time,omitzero"`
	// Size is the body's length in bytes; Head its first KeptHeadBytes.
	Size int    `json:"size"`
	Head string `json:"head"`
}

// KeepCallback keeps what diagnosis needs of a callback that changed
// nothing (a KeptCallback: its kind, the task it names, the first
// KeptHeadBytes of the body and the body's size), newest first, within
// both Options.KeptCallbacks entries and Options.KeptCallbackBytes bytes:
// the oldest entries are dropped to make room. It returns how many were
// dropped (also counted in KeptCallbackStats). An unknown callback is
// counted per mode too, under PREFIX unknown-callbacks:count:MODE, for an
// operator's redis-cli (the worker's metrics count them as
// refonte_callbacks_total{outcome="unknown"}).
func (s *Store) KeepCallback(ctx context.Context, k KeptCallback, body []byte) (int64, error) {
	if k.ReceivedAt.IsZero() {
		k.ReceivedAt = time.Now().UTC()
	}
	k.Size = len(body)
	head := body[:min(len(body), KeptHeadBytes)]
	for len(head) > 0 && !utf8.Valid(head) { // not a rune cut in half
		head = head[:len(head)-1]
	}
	k.Head = string(head)
	entry, err := json.Marshal(k)
	if err != nil {
		return 0, fmt.Errorf("store: keep callback: %w", err)
	}
	countUnknown := "0"
	if k.Kind == KeptUnknown {
		countUnknown = "1"
	}
	keys := []string{s.keptKey(), s.keptBytesKey(), s.keptDroppedKey(), s.unknownCountKey(k.Mode), s.legacyUnknownKey()}
	n, err := s.scriptInt(ctx, keepCallbackScript, keys,
		entry, s.opts.KeptCallbacks, s.opts.KeptCallbackBytes, s.ttlMS(), countUnknown)
	if err != nil {
		return 0, fmt.Errorf("store: keep callback: %w", err)
	}
	return n, nil
}

// KeptCallbacks returns up to limit kept callbacks, newest first.
func (s *Store) KeptCallbacks(ctx context.Context, limit int) ([]KeptCallback, error) {
	if limit <= 0 {
		return nil, nil
	}
	v, err := s.rdb.LRange(ctx, s.keptKey(), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: kept callbacks: %w", err)
	}
	out := make([]KeptCallback, 0, len(v))
	for _, x := range v {
		var k KeptCallback
		if err := json.Unmarshal([]byte(x), &k); err != nil {
			return nil, fmt.Errorf("store: kept callbacks: %w", err)
		}
		out = append(out, k)
	}
	return out, nil
}

// KeptCallbackStats are the totals of the kept callbacks.
type KeptCallbackStats struct {
	// Kept and Bytes are the entries kept now and their size in Redis.
	Kept, Bytes int64
	// Dropped counts the entries dropped to stay within the limits
	// (within the retention period).
	Dropped int64
}

// KeptCallbackStats returns the totals of the kept callbacks.
func (s *Store) KeptCallbackStats(ctx context.Context) (KeptCallbackStats, error) {
	var st KeptCallbackStats
	n, err := s.rdb.LLen(ctx, s.keptKey()).Result()
	if err != nil {
		return st, fmt.Errorf("store: kept callback stats: %w", err)
	}
	st.Kept = n
	for _, f := range []struct {
		key string
		dst *int64
	}{{s.keptBytesKey(), &st.Bytes}, {s.keptDroppedKey(), &st.Dropped}} {
		v, err := s.rdb.Get(ctx, f.key).Int64()
		if err != nil && !isNotFound(err) {
			return st, fmt.Errorf("store: kept callback stats: %w", err)
		}
		*f.dst = v
	}
	return st, nil
}
