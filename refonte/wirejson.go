package refonte

// Hand-written JSON for the two hot paths of a batch: the body of a task
// creation (TaskParams out) and the task object (Task in, from a create's
// answer or a callback). Each fast path handles the shapes these paths
// carry and gives up (ok == false) on anything else, and the caller then
// runs encoding/json, so the bytes produced, the values decoded and the
// errors returned are always encoding/json's. The equivalence is tested
// value by value and fuzzed against encoding/json (wirejson_test.go).

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
)

// bufPool holds scratch buffers for encoding request bodies and reading
// answers and callbacks. Nothing handed to a caller points into them.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf is the largest buffer put back in bufPool: a rare huge body
// does not stay pinned in memory.
const maxPooledBuf = 64 << 10

func getBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuf(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuf {
		return
	}
	b.Reset()
	bufPool.Put(b)
}

// readAtMost appends to buf what r yields until io.EOF or limit bytes,
// whichever comes first, as buf.ReadFrom(io.LimitReader(r, limit)) does
// but without allocating the LimitReader. It returns nil at io.EOF or at
// the limit, and the reader's error otherwise.
func readAtMost(buf *bytes.Buffer, r io.Reader, limit int64) error {
	for limit > 0 {
		buf.Grow(bytes.MinRead)
		free := buf.AvailableBuffer()
		free = free[:min(int64(cap(free)), limit)]
		n, err := r.Read(free)
		if n < 0 || n > len(free) {
			return errors.New("refonte: reader returned an invalid count")
		}
		buf.Write(free[:n])
		limit -= int64(n)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// marshalParams returns the JSON of p, byte for byte what json.Marshal
// returns (keys sorted, HTML characters escaped, raw values compacted).
func marshalParams(p TaskParams) ([]byte, error) {
	buf := getBuf()
	defer putBuf(buf)
	if appendParams(buf, p) {
		return bytes.Clone(buf.Bytes()), nil
	}
	return json.Marshal(p)
}

// maxEncodeDepth bounds the nesting the fast encoder follows; deeper
// values (or a map holding itself) go to encoding/json.
const maxEncodeDepth = 64

// appendParams appends the JSON of p to buf; false means give up.
func appendParams(buf *bytes.Buffer, p TaskParams) bool {
	if p == nil {
		buf.WriteString("null")
		return true
	}
	return appendObject(buf, map[string]any(p), 0)
}

func appendObject(buf *bytes.Buffer, m map[string]any, depth int) bool {
	var keysArr [24]string
	keys := keysArr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		appendString(buf, k)
		buf.WriteByte(':')
		if !appendValue(buf, m[k], depth+1) {
			return false
		}
	}
	buf.WriteByte('}')
	return true
}

// appendValue appends the JSON of v as encoding/json (with HTML escaping)
// writes it; false means give up.
func appendValue(buf *bytes.Buffer, v any, depth int) bool {
	if depth > maxEncodeDepth {
		return false
	}
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case string:
		appendString(buf, x)
	case json.RawMessage:
		if x == nil {
			buf.WriteString("null")
			return true
		}
		start := buf.Len()
		if json.Compact(buf, x) != nil {
			return false
		}
		if out := buf.Bytes()[start:]; needsHTMLEscape(out) {
			compacted := bytes.Clone(out)
			buf.Truncate(start)
			json.HTMLEscape(buf, compacted)
		}
	case bool:
		if x {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case int:
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(x), 10))
	case int64:
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), x, 10))
	case int32:
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(x), 10))
	case uint64:
		buf.Write(strconv.AppendUint(buf.AvailableBuffer(), x, 10))
	case float64:
		b, ok := jsonwire.AppendFloat(buf.AvailableBuffer(), x)
		if !ok {
			return false
		}
		buf.Write(b)
	case map[string]any:
		if x == nil {
			buf.WriteString("null")
			return true
		}
		return appendObject(buf, x, depth)
	case TaskParams:
		if x == nil {
			buf.WriteString("null")
			return true
		}
		return appendObject(buf, map[string]any(x), depth)
	case []any:
		return appendArray(buf, x, func(e any) bool { return appendValue(buf, e, depth+1) })
	case []string:
		return appendArray(buf, x, func(e string) bool { appendString(buf, e); return true })
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return false
		}
		buf.Write(b)
	}
	return true
}

// appendArray appends x as a JSON array (null when nil), each element
// written by elem; false means elem gave up.
func appendArray[E any](buf *bytes.Buffer, x []E, elem func(E) bool) bool {
	if x == nil {
		buf.WriteString("null")
		return true
	}
	buf.WriteByte('[')
	for i, e := range x {
		if i > 0 {
			buf.WriteByte(',')
		}
		if !elem(e) {
			return false
		}
	}
	buf.WriteByte(']')
	return true
}

// needsHTMLEscape reports whether compacted JSON holds a character
// json.Marshal escapes: <, >, &, U+2028 or U+2029.
func needsHTMLEscape(b []byte) bool {
	for i, c := range b {
		switch c {
		case '<', '>', '&':
			return true
		case 0xE2:
			if i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xA8 {
				return true
			}
		}
	}
	return false
}

// appendString appends s as a JSON string, escaped as json.Marshal does.
func appendString(buf *bytes.Buffer, s string) {
	buf.Grow(len(s) + 2)
	buf.Write(jsonwire.AppendString(buf.AvailableBuffer(), s))
}

// scanner walks a JSON text held in b. Its methods validate what they
// consume as encoding/json's scanner does, and report false on invalid
// input or on input the fast paths leave to encoding/json.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() { s.i = jsonwire.SkipSpace(s.b, s.i) }

// peek returns the next byte after white space, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// skipValue consumes one value after white space and returns its span
// (jsonwire.SkipValue: what encoding/json's syntax check accepts, nesting
// bounded as encoding/json bounds it).
func (s *scanner) skipValue(depth int) (start, end int, ok bool) {
	start = jsonwire.SkipSpace(s.b, s.i)
	if end, ok = jsonwire.SkipValue(s.b, start, depth); !ok {
		return 0, 0, false
	}
	s.i = end
	return start, end, true
}

func (s *scanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// wireText is an owned copy of a JSON text: strings and raw values
// decoded from it are cut from text and raw.
type wireText struct {
	text string
	raw  []byte
}

// rawAt returns the raw value at [start, end), capped so that an append
// to it cannot write over a neighbour.
func (w *wireText) rawAt(start, end int) json.RawMessage {
	return json.RawMessage(w.raw[start:end:end])
}

// stringValue decodes the string value at s (on its quote) as
// encoding/json decodes it into a string field.
func (w *wireText) stringValue(s *scanner) (string, bool) {
	q := s.i
	v, next, plain, ok := jsonwire.ReadString(s.b, q, nil)
	if ok {
		s.i = next
		if plain {
			// What encoding/json's unquote returns unchanged: cut from text.
			return w.text[q+1 : next-1], true
		}
		return string(v), true
	}
	// ReadString declines invalid UTF-8, which encoding/json replaces.
	if next, ok = jsonwire.SkipString(s.b, q); !ok {
		return "", false
	}
	s.i = next
	var str string
	if json.Unmarshal(s.b[q:next], &str) != nil {
		return "", false
	}
	return str, true
}

// taskFields are the JSON names of the Task fields, in a fixed order.
var taskFields = [...]string{"task_id", "type", "status", "created_at", "updated_at", "completed_at",
	"project", "batch", "callback_url", "callback_succeeded", "instruction", "params", "metadata",
	"unique_id", "tags", "is_test", "response"}

// foldsToAny reports whether key, which matches none of names exactly,
// could still match one for encoding/json, which also matches field
// names case-insensitively (with Unicode folding).
func foldsToAny(key []byte, names []string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	for _, n := range names {
		if len(n) == len(key) && strings.EqualFold(n, string(key)) {
			return true
		}
	}
	return false
}

// objectKey reads a member key and its colon; it gives up on keys with
// escapes, which encoding/json unescapes before matching.
func objectKey(s *scanner) (key []byte, ok bool) {
	if s.peek() != '"' {
		return nil, false
	}
	// Keys with invalid UTF-8 are declined too: encoding/json replaces it.
	key, next, plain, ok := jsonwire.ReadString(s.b, s.i, nil)
	if !ok || !plain {
		return nil, false
	}
	s.i = next
	if s.peek() != ':' {
		return nil, false
	}
	s.i++
	s.ws()
	return key, true
}

// next consumes, after white space, the ',' or the closing byte end that
// follows a member or an element; done is true at end, ok false at
// anything else.
func (s *scanner) next(end byte) (done, ok bool) {
	switch s.peek() {
	case ',':
		s.i++
		return false, true
	case end:
		s.i++
		return true, true
	}
	return false, false
}

// members walks the object at s (on its '{') as encoding/json matches its
// members to the fields of a struct whose JSON names are names: for each
// member whose key is names[f], field(f) decodes the value at s. It gives
// up (false) on members whose key could match a name only by case folding,
// on a name met twice and on whatever field gives up on; it skips the
// values of other members.
func (s *scanner) members(names []string, depth int, field func(f int) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return true
	}
	var seen uint32
	for {
		key, ok := objectKey(s)
		if !ok {
			return false
		}
		f := -1
		for i, name := range names {
			if string(key) == name {
				f = i
				break
			}
		}
		switch {
		case f < 0:
			if foldsToAny(key, names) {
				return false
			}
			if _, _, ok := s.skipValue(depth + 1); !ok {
				return false
			}
		case seen&(1<<f) != 0:
			return false
		default:
			seen |= 1 << f
			if !field(f) {
				return false
			}
		}
		done, ok := s.next('}')
		if !ok {
			return false
		}
		if done {
			return true
		}
	}
}

// decodeTask decodes the object at s (on its '{') into t, which must be
// zero, as json.Unmarshal would; false means give up (t is then partly
// set). Duplicate members are left to encoding/json.
func (w *wireText) decodeTask(s *scanner, t *Task, depth int) bool {
	return s.members(taskFields[:], depth, func(f int) bool {
		return w.taskField(s, t, taskFields[f], depth)
	})
}

// taskField decodes the value at s into t's field of JSON name name.
func (w *wireText) taskField(s *scanner, t *Task, name string, depth int) bool {
	c := s.peek()
	if c == 'n' {
		// null leaves strings, bools and times as they are, sets pointers
		// and slices to nil, and raw values to "null".
		start := s.i
		if !s.literal("null") {
			return false
		}
		switch name {
		case "params":
			t.Params = w.rawAt(start, s.i)
		case "metadata":
			t.Metadata = w.rawAt(start, s.i)
		case "response":
			t.Response = w.rawAt(start, s.i)
		}
		return true
	}
	switch name {
	case "task_id", "type", "status", "project", "batch", "callback_url", "instruction", "unique_id":
		if c != '"' {
			return false
		}
		v, ok := w.stringValue(s)
		if !ok {
			return false
		}
		switch name {
		case "task_id":
			t.ID = v
		case "type":
			t.Type = TaskType(v)
		case "status":
			t.Status = TaskStatus(v)
		case "project":
			t.Project = v
		case "batch":
			t.Batch = v
		case "callback_url":
			t.CallbackURL = v
		case "instruction":
			t.Instruction = v
		case "unique_id":
			t.UniqueID = v
		}
	case "created_at", "updated_at", "completed_at":
		start, end, ok := s.skipValue(depth + 1)
		if !ok {
			return false
		}
		var tm time.Time
		if tm.UnmarshalJSON(w.raw[start:end]) != nil {
			return false
		}
		switch name {
		case "created_at":
			t.CreatedAt = tm
		case "updated_at":
			t.UpdatedAt = tm
		default:
			t.CompletedAt = new(time.Time)
			*t.CompletedAt = tm
		}
	case "callback_succeeded", "is_test":
		var v bool
		switch {
		case c == 't' && s.literal("true"):
			v = true
		case c == 'f' && s.literal("false"):
		default:
			return false
		}
		if name == "is_test" {
			t.IsTest = v
		} else {
			t.CallbackSucceeded = new(bool)
			*t.CallbackSucceeded = v
		}
	case "params", "metadata", "response":
		start, end, ok := s.skipValue(depth + 1)
		if !ok {
			return false
		}
		switch name {
		case "params":
			t.Params = w.rawAt(start, end)
		case "metadata":
			t.Metadata = w.rawAt(start, end)
		default:
			t.Response = w.rawAt(start, end)
		}
	case "tags":
		if c != '[' {
			return false
		}
		s.i++
		tags := []string{}
		if s.peek() == ']' {
			s.i++
			t.Tags = tags
			return true
		}
		for {
			switch s.peek() {
			case '"':
				v, ok := w.stringValue(s)
				if !ok {
					return false
				}
				tags = append(tags, v)
			case 'n':
				if !s.literal("null") {
					return false
				}
				tags = append(tags, "")
			default:
				return false
			}
			done, ok := s.next(']')
			if !ok {
				return false
			}
			if done {
				t.Tags = tags
				return true
			}
		}
	default:
		return false
	}
	return true
}

// decodeTaskAnswer decodes an API answer holding one task object followed
// by anything (json.Decoder reads the first value only) into t; false
// means give up.
func decodeTaskAnswer(body []byte, t *Task) bool {
	w := &wireText{text: string(body), raw: bytes.Clone(body)}
	s := &scanner{b: body}
	var tmp Task
	if !w.decodeTask(s, &tmp, 0) {
		return false
	}
	*t = tmp
	return true
}

// callbackWire is the envelope of a callback body.
type callbackWire struct {
	Task     *Task           `json:"task"` // decoded in the same pass: callbacks are a hot path
	Response json.RawMessage `json:"response"`
	TaskID   *string         `json:"task_id"`
	Status   *string         `json:"status"`
	UniqueID *string         `json:"unique_id"`
	Metadata json.RawMessage `json:"metadata"`
}

// fields returns what ParseCallback uses of the envelope: the pointers'
// values, "" for nil.
func (cw *callbackWire) fields() callbackFields {
	f := callbackFields{Task: cw.Task, Response: cw.Response, Metadata: cw.Metadata}
	if cw.TaskID != nil {
		f.TaskID = *cw.TaskID
	}
	if cw.Status != nil {
		f.Status = *cw.Status
	}
	if cw.UniqueID != nil {
		f.UniqueID = *cw.UniqueID
	}
	return f
}

// callbackFields is a callback envelope with its strings by value (an
// absent or null string is "", which ParseCallback treats as absent).
type callbackFields struct {
	Task                     *Task
	Response, Metadata       json.RawMessage
	TaskID, Status, UniqueID string
}

var callbackNames = [...]string{"task", "response", "task_id", "status", "unique_id", "metadata"}

// decodeCallback decodes a whole callback body as json.Unmarshal decodes
// it into a zero callbackWire (then fields); false means give up.
func decodeCallback(body, raw []byte, wire *callbackFields) bool {
	w := &wireText{text: string(body), raw: raw}
	s := &scanner{b: body}
	if !s.members(callbackNames[:], 0, func(f int) bool {
		return w.callbackField(s, wire, callbackNames[f])
	}) {
		return false
	}
	// json.Unmarshal accepts nothing but white space after the value.
	s.ws()
	return s.i == len(body)
}

func (w *wireText) callbackField(s *scanner, wire *callbackFields, name string) bool {
	switch name {
	case "task":
		switch s.peek() {
		case 'n':
			return s.literal("null")
		case '{':
			t := new(Task)
			if !w.decodeTask(s, t, 1) {
				return false
			}
			wire.Task = t
			return true
		}
		return false
	case "response", "metadata":
		start, end, ok := s.skipValue(1)
		if !ok {
			return false
		}
		if name == "response" {
			wire.Response = w.rawAt(start, end)
		} else {
			wire.Metadata = w.rawAt(start, end)
		}
		return true
	}
	// task_id, status, unique_id: null leaves them "".
	var v string
	switch s.peek() {
	case 'n':
		if !s.literal("null") {
			return false
		}
	case '"':
		var ok bool
		if v, ok = w.stringValue(s); !ok {
			return false
		}
	default:
		return false
	}
	switch name {
	case "task_id":
		wire.TaskID = v
	case "status":
		wire.Status = v
	default:
		wire.UniqueID = v
	}
	return true
}
