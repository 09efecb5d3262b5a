package sandbox

import (
	"bytes"
	"container/heap"
	"context"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// callbackBody is the JSON the platform POSTs to a task's callback_url.
type callbackBody struct {
	Task     refonte.Task       `json:"task"`
	Response json.RawMessage    `json:"response"`
	TaskID   string             `json:"task_id"`
	Status   refonte.TaskStatus `json:"status"`
}

// encodeCallback returns the callbackBody of snap.
func encodeCallback(snap *refonte.Task) ([]byte, error) {
	return json.Marshal(callbackBody{Task: *snap, Response: snap.Response, TaskID: snap.ID, Status: snap.Status})
}

// delivery is one copy of a task's callback, retried until it gets a 2xx
// or runs out of attempts.
type delivery struct {
	t       *task
	url     string
	body    []byte
	attempt int
}

// queueCallbacks applies the callback faults and queues the deliveries of
// a task that just reached snap's terminal status. With sync, the first
// attempt of the first copy is made before returning (early callbacks).
func (s *Server) queueCallbacks(_ *world, t *task, snap refonte.Task, sync bool) {
	f := s.Faults()
	if s.roll(f.CallbackDropRate) {
		s.stats.callbacksDropped.Add(1)
		return
	}
	copies := 1
	if s.roll(f.CallbackDupRate) {
		copies = 2 + s.intn(2)
		s.stats.callbacksDuplicated.Add(int64(copies - 1))
	}
	body, err := encodeCallback(&snap)
	if err != nil {
		s.log.Error("encode callback", zap.Error(err))
		return
	}
	for i := range copies {
		d := &delivery{t: t, url: snap.CallbackURL, body: body}
		if sync && i == 0 {
			s.attempt(s.ctx, d)
			continue
		}
		if !s.sched.deliveries.put(s.ctx, d) {
			return
		}
	}
}

func (s *Server) deliveryWorker(ctx context.Context) {
	mine := make(chan *delivery, 1)
	for {
		d, ok := s.sched.deliveries.get(ctx, mine)
		if !ok {
			return
		}
		s.attempt(ctx, d)
	}
}

// deliveryQueue hands deliveries to the callback workers: to the idle
// worker that parked last (LIFO), so that a busy sandbox keeps using the
// same few goroutines, whose stacks stay grown and connections warm,
// rather than cycling through all of them; when every worker is busy, to
// a FIFO queue of at most queueCap deliveries (put then waits).
type deliveryQueue struct {
	mu    sync.Mutex
	idle  []chan *delivery // parked workers' own channels (buffer 1)
	queue []*delivery
	slots chan struct{} // one token per queued delivery
}

const queueCap = 8192

func newDeliveryQueue() *deliveryQueue {
	return &deliveryQueue{slots: make(chan struct{}, queueCap)}
}

// popIdle removes the last parked worker's channel; q.mu must be held.
func (q *deliveryQueue) popIdle() (chan *delivery, bool) {
	n := len(q.idle)
	if n == 0 {
		return nil, false
	}
	ch := q.idle[n-1]
	q.idle[n-1] = nil
	q.idle = q.idle[:n-1]
	return ch, true
}

// put hands d to an idle worker or queues it, waiting for room; it
// returns false if ctx is done first.
func (q *deliveryQueue) put(ctx context.Context, d *delivery) bool {
	q.mu.Lock()
	if ch, ok := q.popIdle(); ok {
		q.mu.Unlock()
		ch <- d
		return true
	}
	q.mu.Unlock()
	select {
	case q.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	q.mu.Lock()
	if ch, ok := q.popIdle(); ok { // a worker parked in between
		q.mu.Unlock()
		<-q.slots
		ch <- d
		return true
	}
	q.queue = append(q.queue, d)
	q.mu.Unlock()
	return true
}

// get returns the oldest queued delivery, or parks the worker whose own
// channel is mine until a delivery is handed to it; false once ctx is
// done.
func (q *deliveryQueue) get(ctx context.Context, mine chan *delivery) (*delivery, bool) {
	q.mu.Lock()
	if len(q.queue) > 0 {
		d := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		<-q.slots
		return d, true
	}
	q.idle = append(q.idle, mine)
	q.mu.Unlock()
	select {
	case d := <-mine:
		return d, true
	case <-ctx.Done():
		return nil, false
	}
}

// attempt makes one delivery attempt and schedules a retry on failure.
func (s *Server) attempt(ctx context.Context, d *delivery) {
	if ctx.Err() != nil {
		return
	}
	d.attempt++
	s.stats.callbacksSent.Add(1)
	ok := s.post(ctx, d)
	if ctx.Err() != nil {
		return
	}
	if ok {
		s.stats.callbacksOK.Add(1)
		d.t.setCallbackSucceeded(true)
		return
	}
	s.stats.callbackAttemptsFailed.Add(1)
	if d.attempt >= s.cfg.CallbackRetries {
		s.stats.callbacksFailed.Add(1)
		d.t.setCallbackSucceeded(false)
		s.log.Warn("callback abandoned", zap.String("host", hostOf(d.url)), zap.Int("attempts", d.attempt))
		return
	}
	wait := s.cfg.CallbackBackoff
	for i := 1; i < d.attempt && wait < s.cfg.CallbackMaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, s.cfg.CallbackMaxBackoff)
	s.sched.add(event{at: time.Now().Add(wait), d: d})
}

func (s *Server) post(ctx context.Context, d *delivery) bool {
	req, err := s.callbackRequest(ctx, d)
	if err != nil {
		return false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.log.Debug("callback attempt failed", zap.String("host", hostOf(d.url)), zap.Int("attempt", d.attempt), zap.Error(err))
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s.log.Debug("callback answered non-2xx", zap.String("host", hostOf(d.url)), zap.Int("attempt", d.attempt), zap.Int("status", resp.StatusCode))
		return false
	}
	return true
}

// callbackURL is a parsed callback URL, kept while deliveries go to the
// same URL (the common case: one receiver) so it is parsed once. It is
// shared read-only by the requests, as RoundTrippers must not change them.
type callbackURL struct {
	raw string
	u   *url.URL
}

func (s *Server) parseCallbackURL(raw string) (*url.URL, error) {
	if c := s.lastURL.Load(); c != nil && c.raw == raw {
		return c.u, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	// As http.NewRequest does: "host:" means the default port.
	if i := strings.LastIndex(u.Host, ":"); i > strings.LastIndex(u.Host, "]") {
		u.Host = strings.TrimSuffix(u.Host, ":")
	}
	s.lastURL.Store(&callbackURL{raw, u})
	return u, nil
}

// callbackRequest returns the POST of d's body to d's URL, the request
// http.NewRequestWithContext would build, with the callback headers.
func (s *Server) callbackRequest(ctx context.Context, d *delivery) (*http.Request, error) {
	u, err := s.parseCallbackURL(d.url)
	if err != nil {
		return nil, err
	}
	body := d.body
	req := &http.Request{
		Method: http.MethodPost, URL: u, Host: u.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{contentTypeKey: jsonContentType, callbackAuthKey: s.cbAuth},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		GetBody:       func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	}
	if len(body) == 0 {
		req.Body = http.NoBody
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	}
	return req.WithContext(ctx), nil
}

// The canonical header keys of a callback POST, set without
// re-canonicalizing them on every attempt.
var (
	contentTypeKey  = textproto.CanonicalMIMEHeaderKey("Content-Type")
	callbackAuthKey = textproto.CanonicalMIMEHeaderKey(CallbackAuthHeader)
)

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Host
}

func (t *task) setCallbackSucceeded(ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.t.CallbackSucceeded != nil && *t.t.CallbackSucceeded {
		return
	}
	v := ok
	t.t.CallbackSucceeded = &v
}

// event is a scheduled completion (t) or callback retry (d).
type event struct {
	at  time.Time
	seq uint64
	w   *world
	t   *task
	d   *delivery
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = event{}
	*h = old[:len(old)-1]
	return e
}

// scheduler is the one goroutine that completes tasks when their time comes
// and re-queues callback retries: a min-heap of events and one timer, so
// 100k+ pending tasks cost one heap entry each.
type scheduler struct {
	s          *Server
	mu         sync.Mutex
	h          eventHeap
	seq        uint64
	wake       chan struct{}
	deliveries *deliveryQueue
}

func newScheduler(s *Server) *scheduler {
	return &scheduler{s: s, wake: make(chan struct{}, 1), deliveries: newDeliveryQueue()}
}

func (sc *scheduler) add(e event) {
	sc.mu.Lock()
	sc.seq++
	e.seq = sc.seq
	heap.Push(&sc.h, e)
	first := sc.h[0].seq == e.seq
	sc.mu.Unlock()
	if first {
		select {
		case sc.wake <- struct{}{}:
		default:
		}
	}
}

func (sc *scheduler) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	due := make([]event, 0, 1024)
	for {
		due = due[:0]
		wait := time.Hour
		sc.mu.Lock()
		now := time.Now()
		for len(sc.h) > 0 && len(due) < cap(due) {
			if d := sc.h[0].at.Sub(now); d > 0 {
				wait = d
				break
			}
			due = append(due, heap.Pop(&sc.h).(event))
		}
		sc.mu.Unlock()
		for _, e := range due {
			if ctx.Err() != nil {
				return
			}
			if e.d != nil {
				if !sc.deliveries.put(ctx, e.d) {
					return
				}
				continue
			}
			sc.s.finish(e.w, e.t, false)
		}
		if len(due) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-sc.wake:
		case <-timer.C:
		}
	}
}
