package refonte

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"

	json "github.com/goccy/go-json"
)

// CallbackAuthHeader is the header carrying the callback auth key on the
// platform's callback requests.
const CallbackAuthHeader = "refonte.ai-callback-auth"

// MaxCallbackBytes is the default size limit of a callback body (1 MiB).
const MaxCallbackBytes = 1 << 20

// Callback parse errors.
var (
	// ErrCallbackTooLarge reports a callback body over the size limit.
	ErrCallbackTooLarge = errors.New("refonte: callback body too large")
	// ErrBadCallback reports a callback body that is not JSON or lacks a task id.
	ErrBadCallback = errors.New("refonte: bad callback body")
)

// VerifyCallbackAuth reports whether h carries the callback auth key in
// CallbackAuthHeader, comparing in constant time. It is false when the
// header is missing or key is empty.
func VerifyCallbackAuth(h http.Header, key Secret) bool {
	if key == "" {
		return false
	}
	got := h[callbackAuthCanonical]
	if len(got) != 1 {
		return false
	}
	// Hashing first makes the comparison constant-time in the length too.
	g, w := sum256(got[0]), sum256(key.Reveal())
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// callbackAuthCanonical is http.CanonicalHeaderKey(CallbackAuthHeader),
// the key under which a received request's header holds it.
const callbackAuthCanonical = "Refonte.ai-Callback-Auth"

// sum256 is sha256.Sum256([]byte(s)), without allocating for the usual
// lengths of a key.
func sum256(s string) [sha256.Size]byte {
	var b [256]byte
	if len(s) <= len(b) {
		n := copy(b[:], s)
		return sha256.Sum256(b[:n])
	}
	return sha256.Sum256([]byte(s))
}

// Callback is a parsed callback body: {"task": {…}, "response": {…},
// "task_id": "…", "status": "completed"}. TaskID, Status and Response come
// from the top level, or from the task object when absent there.
type Callback struct {
	// TaskID is the task's id.
	TaskID string
	// Status is the task's status when the callback was sent.
	Status TaskStatus
	// UniqueID is the task's unique_id ("" when it has none).
	UniqueID string
	// Metadata is the task's metadata (nil when absent).
	Metadata json.RawMessage
	// Response is the task's response (nil when absent or null).
	Response json.RawMessage
	// Task is the task object, or nil when the body had none.
	Task *Task
	// Raw is the whole body.
	Raw json.RawMessage
}

// ParseCallback reads and parses a callback body of at most limit bytes
// (limit <= 0 means MaxCallbackBytes). A larger body is an error wrapping
// ErrCallbackTooLarge; invalid JSON or a body without a task id is an error
// wrapping ErrBadCallback.
func ParseCallback(r io.Reader, limit int64) (*Callback, error) {
	if limit <= 0 {
		limit = MaxCallbackBytes
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("refonte: reading the callback body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", ErrCallbackTooLarge, limit)
	}
	var wire callbackWire
	if err := json.Unmarshal(body, &wire); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCallback, err)
	}
	cb := &Callback{Raw: json.RawMessage(body)}
	if t := wire.Task; t != nil {
		cb.Task = t
		cb.TaskID, cb.Status, cb.UniqueID = t.ID, t.Status, t.UniqueID
		if isPresent(t.Metadata) {
			cb.Metadata = t.Metadata
		}
		if isPresent(t.Response) {
			cb.Response = t.Response
		}
	}
	if wire.TaskID != "" {
		cb.TaskID = wire.TaskID
	}
	if wire.Status != "" {
		cb.Status = wire.Status
	}
	if cb.UniqueID == "" {
		cb.UniqueID = wire.UniqueID
	}
	if cb.Metadata == nil && isPresent(wire.Metadata) {
		cb.Metadata = wire.Metadata
	}
	if isPresent(wire.Response) {
		cb.Response = wire.Response
	}
	if cb.TaskID == "" {
		return nil, fmt.Errorf("%w: no task_id", ErrBadCallback)
	}
	return cb, nil
}

// callbackWire is the envelope of a callback body (an absent or null
// string is "", which ParseCallback treats as absent).
type callbackWire struct {
	Task     *Task           `json:"task"`
	Response json.RawMessage `json:"response"`
	TaskID   string          `json:"task_id"`
	Status   TaskStatus      `json:"status"`
	UniqueID string          `json:"unique_id"`
	Metadata json.RawMessage `json:"metadata"`
}

// isPresent reports whether a raw JSON value is present and not null.
func isPresent(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}
