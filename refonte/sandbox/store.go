package sandbox

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"golang.org/x/time/rate"

	"github.com/refonte-ai/refonte-batch/refonte"
)

const shardCount = 64

var (
	errExists   = errors.New("already exists")
	errNotFound = errors.New("not found")
)

// task is one stored task. mu guards t and the fields below it. The raw
// JSON fields of t (Params, Metadata, Response) only ever hold JSON the
// sandbox encoded itself with json.Marshal: valid and compact.
type task struct {
	seq   int
	batch *batch

	mu           sync.Mutex
	t            refonte.Task
	clearOnError bool
	fail         bool
}

// snapshot returns a copy of the task object that is safe to encode after
// the lock is released: every slice and pointer in it is replaced, never
// mutated, when the task changes.
func (t *task) snapshot() refonte.Task {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.t
}

type taskShard struct {
	mu sync.RWMutex
	m  map[string]*task
}

type uidShard struct {
	mu sync.Mutex
	m  map[string]*task
}

type project struct {
	Type         refonte.TaskType `json:"type"`
	Name         string           `json:"name"`
	Params       json.RawMessage  `json:"params"`
	ParamHistory []paramVersion   `json:"param_history"`
	CreatedAt    time.Time        `json:"created_at"`
}

type paramVersion struct {
	Version   int             `json:"version"`
	CreatedAt time.Time       `json:"created_at"`
	Params    json.RawMessage `json:"params"`
}

// Batch statuses.
const (
	batchStaging    = "staging"
	batchInProgress = "in_progress"
	batchCompleted  = "completed"
)

type batch struct {
	mu        sync.Mutex
	name      string
	project   string
	status    string
	callback  string
	createdAt time.Time
	metadata  json.RawMessage
	counts    map[refonte.TaskStatus]int
	held      []*task // tasks waiting for the finalize (HoldUntilFinalize)
	tasks     []*task // every task of the batch, in creation order
}

type batchJSON struct {
	Name      string          `json:"name"`
	Project   string          `json:"project"`
	Status    string          `json:"status"`
	Callback  string          `json:"callback"`
	CreatedAt time.Time       `json:"created_at"`
	Metadata  json.RawMessage `json:"metadata"`
}

func (b *batch) snapshot() batchJSON {
	b.mu.Lock()
	defer b.mu.Unlock()
	md := b.metadata
	if md == nil {
		md = json.RawMessage("{}")
	}
	return batchJSON{b.name, b.project, b.status, b.callback, b.createdAt, md}
}

// settle records a task's move from pending to a terminal status and
// completes the batch when it is finalized and has no pending task left.
func (b *batch) settle(to refonte.TaskStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.counts[refonte.StatusPending]--
	b.counts[to]++
	if b.status == batchInProgress && b.counts[refonte.StatusPending] == 0 {
		b.status = batchCompleted
	}
}

// world is everything one mode owns: projects, batches, tasks, unique_ids.
type world struct {
	mode  refonte.Mode
	tasks [shardCount]taskShard
	uids  [shardCount]uidShard

	orderMu sync.RWMutex
	order   []*task

	metaMu       sync.RWMutex
	projects     map[string]*project
	projectOrder []string
	batches      map[string]*batch
	batchOrder   []*batch

	// The ledger is an independent record of unique_ids held by live tasks,
	// updated after the reservation logic has run: it catches a unique_id
	// created twice if the reservation were ever racy.
	ledgerMu   sync.Mutex
	ledgerLive map[string]int
	ledgerEver map[string]struct{}

	limiterMu sync.Mutex
	limiter   *rate.Limiter

	window window
	status [4]atomic.Int64
}

func newWorld(mode refonte.Mode, rateLimit float64) *world {
	w := &world{
		mode:       mode,
		projects:   map[string]*project{},
		batches:    map[string]*batch{},
		ledgerLive: map[string]int{},
		ledgerEver: map[string]struct{}{},
	}
	for i := range w.tasks {
		w.tasks[i].m = map[string]*task{}
		w.uids[i].m = map[string]*task{}
	}
	w.setRate(rateLimit)
	return w
}

func shardOf(s string) int {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return int(h % shardCount)
}

func statusIndex(s refonte.TaskStatus) int {
	switch s {
	case refonte.StatusPending:
		return 0
	case refonte.StatusCompleted:
		return 1
	case refonte.StatusCanceled:
		return 2
	default:
		return 3
	}
}

func (w *world) setRate(limit float64) {
	w.limiterMu.Lock()
	defer w.limiterMu.Unlock()
	if limit <= 0 {
		w.limiter = nil
		return
	}
	burst := int(math.Ceil(limit))
	if w.limiter == nil {
		w.limiter = rate.NewLimiter(rate.Limit(limit), burst)
		return
	}
	w.limiter.SetLimit(rate.Limit(limit))
	w.limiter.SetBurst(burst)
}

// allow takes one create token, or returns how long to wait for one.
func (w *world) allow(now time.Time) (bool, time.Duration) {
	w.limiterMu.Lock()
	l := w.limiter
	w.limiterMu.Unlock()
	if l == nil {
		return true, 0
	}
	if l.AllowN(now, 1) {
		return true, 0
	}
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, d
}

func (w *world) getTask(id string) (*task, bool) {
	sh := &w.tasks[shardOf(id)]
	sh.mu.RLock()
	t, ok := sh.m[id]
	sh.mu.RUnlock()
	return t, ok
}

// reserveUID binds uid to t unless another task holds it.
func (w *world) reserveUID(uid string, t *task) bool {
	sh := &w.uids[shardOf(uid)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if holder, ok := sh.m[uid]; ok && holder != t {
		return false
	}
	sh.m[uid] = t
	return true
}

// releaseUID unbinds uid if t holds it (releaseUIDOnly) and drops one
// count of uid from the live ledger.
func (w *world) releaseUID(uid string, t *task) {
	w.releaseUIDOnly(uid, t)
	w.ledgerMu.Lock()
	if w.ledgerLive[uid] > 1 {
		w.ledgerLive[uid]--
	} else {
		delete(w.ledgerLive, uid)
	}
	w.ledgerMu.Unlock()
}

func (w *world) uidHolder(uid string) (*task, bool) {
	sh := &w.uids[shardOf(uid)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t, ok := sh.m[uid]
	return t, ok
}

// ledgerAdd records that a live task now holds uid; it returns whether
// another live task already held it (a bug) and whether uid was ever
// created before (a legitimate reuse after a release).
func (w *world) ledgerAdd(uid string) (twice, reused bool) {
	w.ledgerMu.Lock()
	defer w.ledgerMu.Unlock()
	twice = w.ledgerLive[uid] > 0
	_, reused = w.ledgerEver[uid]
	w.ledgerLive[uid]++
	w.ledgerEver[uid] = struct{}{}
	return twice, reused
}

// insert stores a new task and gives it its sequence number.
func (w *world) insert(t *task) {
	w.orderMu.Lock()
	t.seq = len(w.order)
	w.order = append(w.order, t)
	if b := t.batch; b != nil {
		// Under orderMu, so a batch's tasks are in seq order too.
		b.mu.Lock()
		b.tasks = append(b.tasks, t)
		b.mu.Unlock()
	}
	w.orderMu.Unlock()
	sh := &w.tasks[shardOf(t.t.ID)]
	sh.mu.Lock()
	sh.m[t.t.ID] = t
	sh.mu.Unlock()
	w.status[0].Add(1)
}

func (w *world) snapshotOrder() []*task {
	w.orderMu.RLock()
	defer w.orderMu.RUnlock()
	return w.order
}

func (w *world) createProject(name string, typ refonte.TaskType, params json.RawMessage, now time.Time) (*project, error) {
	if params == nil {
		params = json.RawMessage("{}")
	}
	w.metaMu.Lock()
	defer w.metaMu.Unlock()
	if _, ok := w.projects[name]; ok {
		return nil, errExists
	}
	p := &project{Type: typ, Name: name, Params: params, CreatedAt: now,
		ParamHistory: []paramVersion{{Version: 0, CreatedAt: now, Params: params}}}
	w.projects[name] = p
	w.projectOrder = append(w.projectOrder, name)
	return p, nil
}

// project returns a copy of the named project.
func (w *world) project(name string) (project, bool) {
	w.metaMu.RLock()
	defer w.metaMu.RUnlock()
	p, ok := w.projects[name]
	if !ok {
		return project{}, false
	}
	return *p, true
}

func (w *world) batch(name string) (*batch, bool) {
	w.metaMu.RLock()
	defer w.metaMu.RUnlock()
	b, ok := w.batches[name]
	return b, ok
}

// window tracks the most accepted creates in any sliding 1-second window.
type window struct {
	mu    sync.Mutex
	times []int64 // accepted create times (ns) within the last second
	head  int
	max   int64
}

func (w *window) add() {
	w.mu.Lock()
	defer w.mu.Unlock()
	ns := time.Now().UnixNano()
	w.times = append(w.times, ns)
	for w.head < len(w.times) && w.times[w.head] <= ns-int64(time.Second) {
		w.head++
	}
	if n := int64(len(w.times) - w.head); n > w.max {
		w.max = n
	}
	if w.head > 4096 && w.head*2 > len(w.times) {
		w.times = append(w.times[:0], w.times[w.head:]...)
		w.head = 0
	}
}

func (w *window) maximum() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max
}
