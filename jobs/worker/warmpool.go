package worker

// warmPool runs functions on long-lived goroutines. asynq starts a new
// goroutine for every task it hands to a handler; the submit handler's call
// chain (HTTP client, go-redis) is deep, so each of those goroutines grew
// its stack from the minimum several times, copying it each time (measured
// at about 5 % of the worker's CPU at thousands of rows per second). The
// pool's goroutines keep their grown stacks from one job to the next (until
// the garbage collector shrinks an idle one).
type warmPool struct {
	work chan *warmJob
}

// warmJob is one call on the pool.
type warmJob struct {
	fn    func()
	done  chan struct{}
	panic any // what fn panicked with, re-raised in the caller
}

// newWarmPool starts n goroutines. A caller of run waits for a free one, so
// n should be at least the number of concurrent callers.
func newWarmPool(n int) *warmPool {
	p := &warmPool{work: make(chan *warmJob)}
	for range max(n, 1) {
		go func() {
			for j := range p.work {
				j.call()
			}
		}()
	}
	return p
}

func (j *warmJob) call() {
	defer close(j.done)
	defer func() { j.panic = recover() }()
	j.fn()
}

// run calls fn on a pool goroutine and returns when it has returned. A panic
// in fn is raised again in the caller's goroutine (asynq recovers handler
// panics there and fails the task, as without the pool).
func (p *warmPool) run(fn func()) {
	j := &warmJob{fn: fn, done: make(chan struct{})}
	p.work <- j
	<-j.done
	if j.panic != nil {
		panic(j.panic)
	}
}

// close stops the pool: its goroutines exit once their current call (if
// any) returns. No run may start after close. It does not wait, so a
// handler stuck past the shutdown cannot hold up the worker's exit.
func (p *warmPool) close() { close(p.work) }
