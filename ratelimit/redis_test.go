package ratelimit

import (
	"context"
	"errors"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

// newClient returns a separate go-redis client on the test's real Redis.
func newClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	rdb := testredis.ClientOn(t, url)
	return rdb
}

// uniqueName names a limit private to this test run on the shared server.
func uniqueName(t testing.TB) string {
	return "test:" + t.Name() + ":" + time.Now().Format("150405.000000000")
}

func newRedisLimiter(t testing.TB, rdb redis.UniversalClient, cfg Config) *RedisLimiter {
	t.Helper()
	l, err := NewRedis(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRedisAccuracy books slots from many goroutines on two clients for 2 s
// of Redis time and counts them: the booked slots are what the limit
// grants, so the count does not depend on how promptly goroutines wake.
func TestRedisAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("2 s accuracy run; skipped with -short")
	}
	url := testredis.URL(t)
	const rate, window = 200.0, 2 * time.Second
	cfg := Config{Rate: rate, Burst: 1, Name: uniqueName(t)}
	lims := []*RedisLimiter{newRedisLimiter(t, newClient(t, url), cfg), newRedisLimiter(t, newClient(t, url), cfg)}
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var (
		mu    sync.Mutex
		slots []time.Time
		wg    sync.WaitGroup
	)
	for g := 0; g < 40; g++ {
		wg.Add(1)
		go func(l *RedisLimiter) {
			defer wg.Done()
			for {
				slot, err := l.WaitSlot(ctx)
				if err != nil {
					if !errors.Is(err, ErrWouldExceedDeadline) && ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				slots = append(slots, slot)
				mu.Unlock()
			}
		}(lims[g%2])
	}
	wg.Wait()
	sort.Slice(slots, func(i, j int) bool { return slots[i].Before(slots[j]) })
	if len(slots) < 2 {
		t.Fatalf("only %d grants", len(slots))
	}
	span := slots[len(slots)-1].Sub(slots[0])
	want := rate*span.Seconds() + 1
	// Never more than the rate allows (the gap check below bounds it per
	// slot too); fewer only when 40 goroutines on a loaded machine leave
	// the limiter idle between requests, so that side is loose.
	if got := float64(len(slots)); got < want*0.8 || got > want*1.03 {
		t.Errorf("%d grants over %v of slots, want %.0f (at most +3%%, at least -20%%)", len(slots), span, want)
	}
	if span < window*9/10 {
		t.Errorf("slots span %v, want about %v (goroutines stalled?)", span, window)
	}
	for i := 1; i < len(slots); i++ {
		if gap := slots[i].Sub(slots[i-1]); gap < 5*time.Millisecond {
			t.Fatalf("slots %d and %d only %v apart, want >= 5ms (rate %v/s, burst 1)", i-1, i, gap, rate)
		}
	}
	t.Logf("%d grants over %v: %.1f/s", len(slots), span, float64(len(slots)-1)/span.Seconds())
}

func TestRedisBurst(t *testing.T) {
	rdb := newClient(t, testredis.URL(t))
	// T = 500 ms, so a slow machine does not blur burst and spacing.
	l := newRedisLimiter(t, rdb, Config{Rate: 2, Burst: 5, Name: uniqueName(t)})
	ctx := context.Background()
	var slots []time.Time
	for i := 0; i < 8; i++ {
		booked, _, slot, err := l.acquire(ctx, "wait", -1)
		if err != nil || !booked {
			t.Fatalf("acquire %d: booked=%v err=%v", i, booked, err)
		}
		slots = append(slots, slot)
	}
	for i := 1; i < 5; i++ {
		if d := slots[i].Sub(slots[0]); d > 250*time.Millisecond {
			t.Errorf("burst grant %d is %v after the first, want immediate", i, d)
		}
	}
	for i := 5; i < 8; i++ {
		if d, want := slots[i].Sub(slots[0]), time.Duration(i-4)*500*time.Millisecond; d != want {
			t.Errorf("grant %d is %v after the first, want %v", i, d, want)
		}
	}
}

func TestRedisCooldownShared(t *testing.T) {
	url := testredis.URL(t)
	cfg := Config{Rate: 2, Burst: 10, Name: uniqueName(t)} // T = 500 ms: the checks below are not timing-sensitive
	a := newRedisLimiter(t, newClient(t, url), cfg)
	b := newRedisLimiter(t, newClient(t, url), cfg)
	ctx := context.Background()
	if d, err := b.Reserve(ctx); err != nil || d != 0 {
		t.Fatalf("Reserve before cooldown = %v, %v; want 0, nil", d, err)
	}
	if err := a.Cooldown(ctx, 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := b.Cooldown(ctx, 50*time.Millisecond); err != nil { // must not shorten
		t.Fatal(err)
	}
	d, err := b.Reserve(ctx)
	if err != nil || d < 300*time.Millisecond || d > 400*time.Millisecond {
		t.Fatalf("b.Reserve during a's cooldown = %v, %v; want ~400ms", d, err)
	}
	start := time.Now()
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < d-20*time.Millisecond {
		t.Errorf("b.Wait returned after %v, before the cooldown ended (%v)", el, d)
	}
	// After the cooldown, grants resume at the steady rate, not a burst.
	if d, err := a.Reserve(ctx); err != nil || d == 0 {
		t.Errorf("a.Reserve right after the cooldown = %v, %v; want a delay (no burst)", d, err)
	}
}

// TestRedisAdaptiveShared checks that adaptive mode's lowered rate lives in
// the shared key: a 429 reported by one instance slows the other, and a
// second report during the same cooldown does not lower it again.
func TestRedisAdaptiveShared(t *testing.T) {
	url := testredis.URL(t)
	cfg := Config{Rate: 20, Burst: 1, Name: uniqueName(t), Adaptive: true}
	a := newRedisLimiter(t, newClient(t, url), cfg)
	b := newRedisLimiter(t, newClient(t, url), cfg)
	ctx := context.Background()
	if err := a.Cooldown(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.Cooldown(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	var slots []time.Time
	for i := 0; i < 3; i++ {
		booked, _, slot, err := b.acquire(ctx, "wait", -1)
		if err != nil || !booked {
			t.Fatalf("acquire %d: booked=%v err=%v", i, booked, err)
		}
		slots = append(slots, slot)
	}
	// Rate 20/s × 0.8 = 16/s: 62.5 ms apart (not 50 ms, nor 78 ms for 0.64).
	for i := 1; i < len(slots); i++ {
		if gap := slots[i].Sub(slots[i-1]); gap < 61*time.Millisecond || gap > 63*time.Millisecond {
			t.Errorf("slots %d and %d are %v apart, want 62.5ms", i-1, i, gap)
		}
	}
	n, err := b.rdb.Exists(ctx, a.Key()).Result()
	if err != nil || n != 1 {
		t.Fatalf("EXISTS %s = %v, %v; want the one key", a.Key(), n, err)
	}
}

func TestRedisWaitCancel(t *testing.T) {
	l := newRedisLimiter(t, testredis.Client(t), Config{Rate: 0.5, Name: uniqueName(t)})
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- l.Wait(ctx) }()
	time.AfterFunc(50*time.Millisecond, cancel)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("Wait returned %v after start, want promptly after the 50ms cancel", el)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Wait did not return after cancel")
	}
}

func TestRedisDeadlineDelayError(t *testing.T) {
	l := newRedisLimiter(t, testredis.Client(t), Config{Rate: 1, Name: uniqueName(t)})
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // nothing booked: the delay does not grow
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := l.Wait(ctx)
		cancel()
		var de *DelayError
		if !errors.As(err, &de) || !errors.Is(err, ErrWouldExceedDeadline) {
			t.Fatalf("Wait = %v, want a *DelayError wrapping ErrWouldExceedDeadline", err)
		}
		if de.Delay < 200*time.Millisecond || de.Delay > time.Second {
			t.Errorf("Delay = %v, want under 1s and not growing", de.Delay)
		}
		if el := time.Since(start); el > 500*time.Millisecond {
			t.Errorf("Wait took %v, want an immediate answer", el)
		}
	}
	d, err := l.Reserve(context.Background())
	if err != nil || d <= 0 || d > time.Second {
		t.Fatalf("Reserve = %v, %v; want a delay under 1s", d, err)
	}
	// A deadline the slot fits in: booked and waited for.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("Wait within deadline = %v", err)
	}
}

func TestRedisReserve(t *testing.T) {
	l := newRedisLimiter(t, testredis.Client(t), Config{Rate: 2, Burst: 2, Name: uniqueName(t)})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if d, err := l.Reserve(ctx); err != nil || d != 0 {
			t.Fatalf("Reserve %d = %v, %v; want 0 (burst)", i, d, err)
		}
	}
	d1, err := l.Reserve(ctx)
	if err != nil || d1 <= 0 || d1 > 500*time.Millisecond {
		t.Fatalf("Reserve = %v, %v; want a delay <= 500ms", d1, err)
	}
	d2, err := l.Reserve(ctx)
	if err != nil || d2 > d1 {
		t.Fatalf("second refused Reserve = %v, %v; want <= %v (refusals book nothing)", d2, err, d1)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Reserve(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reserve(canceled) = %v", err)
	}
}

func TestRedisLoadThenOneCallPerGrant(t *testing.T) {
	rdb := newClient(t, testredis.Fresh(t))
	l := newRedisLimiter(t, rdb, Config{Rate: 1000, Burst: 100, Name: uniqueName(t)})
	ctx := context.Background()
	if err := l.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var calls countingHook
	rdb.AddHook(&calls)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Wait(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := calls.n.Load(); n != 20 {
		t.Errorf("%d Redis commands for 20 grants, want 20", n)
	}
}

func TestRedisKeyExpires(t *testing.T) {
	rdb := testredis.Client(t)
	l := newRedisLimiter(t, rdb, Config{Rate: 10, Burst: 1, Name: uniqueName(t)})
	ctx := context.Background()
	if _, err := l.Reserve(ctx); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, l.Key()).Result()
	if err != nil || ttl <= 0 || ttl > 1200*time.Millisecond {
		t.Fatalf("PTTL = %v, %v; want an expiry of about 1.1s", ttl, err)
	}
	if err := l.Cooldown(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	ttl, err = rdb.PTTL(ctx, l.Key()).Result()
	if err != nil || ttl < time.Minute || ttl > time.Minute+2*time.Second {
		t.Fatalf("PTTL after a 1-minute cooldown = %v, %v", ttl, err)
	}
	n, err := rdb.HLen(ctx, l.Key()).Result()
	if err != nil || n != 2 {
		t.Fatalf("HLEN = %v, %v; want the one hash with tat and cd", n, err)
	}
}

// TestRedisUnavailable checks that a closed port gives an error wrapping
// ErrRedisUnavailable and its cause, never a grant. How fast it fails is the
// client's choice: go-redis retries a refused connection MaxRetries times
// (3 by default, with backoff) and redials DialerRetries times (5, 100 ms
// apart); with MaxRetries -1 and DialerRetries 1 it fails at once.
// closedAddr returns a loopback address nothing listens on (connection refused).
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRedisUnavailable(t *testing.T) {
	addr := closedAddr(t)
	clients := []struct {
		name   string
		opt    *redis.Options
		within time.Duration
	}{
		{"default retries", &redis.Options{Addr: addr}, 3 * time.Second},
		{"no retries", &redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1}, 500 * time.Millisecond},
	}
	for _, c := range clients {
		rdb := redis.NewClient(c.opt)
		t.Cleanup(func() { _ = rdb.Close() })
		l := newRedisLimiter(t, rdb, Config{Rate: 100, Name: "unavailable"})
		calls := []struct {
			name string
			call func(ctx context.Context) error
		}{
			{"Wait", l.Wait},
			{"Reserve", func(ctx context.Context) error { _, err := l.Reserve(ctx); return err }},
			{"Cooldown", func(ctx context.Context) error { return l.Cooldown(ctx, time.Second) }},
			{"Load", l.Load},
		}
		for _, tc := range calls {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				err := tc.call(context.Background())
				if !errors.Is(err, ErrRedisUnavailable) {
					t.Fatalf("err = %v, want one wrapping ErrRedisUnavailable", err)
				}
				var op *net.OpError
				if !errors.As(err, &op) {
					t.Errorf("err = %v does not carry its cause", err)
				}
				if el := time.Since(start); el > c.within {
					t.Errorf("took %v, want a failure within %v", el, c.within)
				}
			})
		}
	}
}

// BenchmarkRedisWait measures Wait's cost on a real Redis when the limit is
// not the bottleneck (rate 1e6/s): one EVALSHA per grant.
func BenchmarkRedisWait(b *testing.B) {
	url := testredis.URL(b)
	rdb := newClient(b, url)
	var calls countingHook
	rdb.AddHook(&calls)
	l := newRedisLimiter(b, rdb, Config{Rate: 1e6, Burst: 1000, Name: uniqueName(b)})
	ctx := context.Background()
	if err := l.Load(ctx); err != nil {
		b.Fatal(err)
	}
	calls.n.Store(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Wait(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
	b.ReportMetric(float64(calls.n.Load())/float64(b.N), "redis-calls/grant")
}

// TestRedisDropBurst: after DropBurst, the next grants of a limit holding
// burst credit (a fresh state, as a new master's older copy would give)
// come at the steady rate, not at once; a failed call keeps the flag.
func TestRedisDropBurst(t *testing.T) {
	rdb := newClient(t, testredis.URL(t))
	ctx := context.Background()
	for _, c := range []struct {
		drop bool
		want []time.Duration // each grant's slot after the first (0: at once)
	}{
		{false, []time.Duration{0, 0, 0}},
		{true, []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond}},
	} {
		// T = 500 ms, burst 5: a fresh state grants 5 slots at once.
		l := newRedisLimiter(t, rdb, Config{Rate: 2, Burst: 5, Name: uniqueName(t)})
		if c.drop {
			l.DropBurst()
		}
		var slots []time.Time
		for i := range 4 {
			booked, _, slot, err := l.acquire(ctx, "wait", -1)
			if err != nil || !booked {
				t.Fatalf("drop=%v: acquire %d: booked=%v err=%v", c.drop, i, booked, err)
			}
			slots = append(slots, slot)
		}
		for i, want := range c.want {
			// Burst grants are booked at "now" (microseconds apart); steady
			// ones exactly T apart.
			if got := slots[i+1].Sub(slots[0]); (want == 0 && got > 250*time.Millisecond) || (want != 0 && got != want) {
				t.Errorf("drop=%v: grant %d is %v after the first, want %v", c.drop, i+2, got, want)
			}
		}
	}

	down := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = down.Close() })
	l := newRedisLimiter(t, down, Config{Rate: 2, Burst: 5, Name: uniqueName(t)})
	l.DropBurst()
	if _, err := l.Reserve(ctx); !errors.Is(err, ErrRedisUnavailable) {
		t.Fatalf("Reserve with Redis down = %v, want ErrRedisUnavailable", err)
	}
	if !l.dropBurst.Load() {
		t.Errorf("a failed call consumed DropBurst's flag; want it kept for the next call")
	}
}
