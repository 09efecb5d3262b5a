package sandbox

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

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
	body, err := json.Marshal(callbackBody{Task: snap, Response: snap.Response, TaskID: snap.ID, Status: snap.Status})
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
		select {
		case s.sched.deliveries <- d:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Server) deliveryWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-s.sched.deliveries:
			s.attempt(ctx, d)
		}
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(CallbackAuthHeader, s.cfg.CallbackAuthKey)
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
	deliveries chan *delivery
}

func newScheduler(s *Server) *scheduler {
	return &scheduler{s: s, wake: make(chan struct{}, 1), deliveries: make(chan *delivery, 8192)}
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
				select {
				case sc.deliveries <- e.d:
				case <-ctx.Done():
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
