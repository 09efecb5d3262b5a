package ratelimit

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func TestConfigNormalize(t *testing.T) {
	tests := []struct {
		name         string
		cfg          Config
		wantErr      string
		wantInterval time.Duration
		wantTol      time.Duration
	}{
		{"defaults", Config{Rate: 10}, "", 100 * time.Millisecond, 0},
		{"burst", Config{Rate: 500, Burst: 10}, "", 2 * time.Millisecond, 18 * time.Millisecond},
		{"fractional rate", Config{Rate: 0.5}, "", 2 * time.Second, 0},
		{"rounded to µs", Config{Rate: 3}, "", 333333 * time.Microsecond, 0},
		{"capped at 1e6/s", Config{Rate: 5e6}, "", time.Microsecond, 0},
		{"zero rate", Config{}, "Rate must be a positive", 0, 0},
		{"negative rate", Config{Rate: -1}, "Rate must be a positive", 0, 0},
		{"NaN rate", Config{Rate: math.NaN()}, "Rate must be a positive", 0, 0},
		{"infinite rate", Config{Rate: math.Inf(1)}, "Rate must be a positive", 0, 0},
		{"negative burst", Config{Rate: 1, Burst: -1}, "Burst must be >= 0", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, g, err := tt.cfg.normalize()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.interval != tt.wantInterval || g.tolerance != tt.wantTol {
				t.Errorf("interval, tolerance = %v, %v; want %v, %v", g.interval, g.tolerance, tt.wantInterval, tt.wantTol)
			}
			if cfg.Prefix != DefaultPrefix || cfg.Burst < 1 {
				t.Errorf("defaults not applied: %+v", cfg)
			}
		})
	}
}

func TestNewRedisRequiresName(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	if _, err := NewRedis(rdb, Config{Rate: 1}); err == nil || !strings.Contains(err.Error(), "Name is required") {
		t.Fatalf("err = %v, want Name is required", err)
	}
	if _, err := NewRedis(nil, Config{Rate: 1, Name: "x"}); err == nil {
		t.Fatal("nil client accepted")
	}
}

func TestKeyFingerprint(t *testing.T) {
	keys := []string{"live_0123456789abcdef", "test_secret", "k", ""}
	seen := map[string]string{}
	for _, k := range keys {
		fp := KeyFingerprint(k)
		if len(fp) != 16 || strings.Trim(fp, "0123456789abcdef") != "" {
			t.Errorf("KeyFingerprint(%q) = %q, want 16 hex digits", k, fp)
		}
		if k != "" && strings.Contains(fp, k) {
			t.Errorf("KeyFingerprint(%q) = %q contains the key", k, fp)
		}
		if fp != KeyFingerprint(k) {
			t.Errorf("KeyFingerprint(%q) is not deterministic", k)
		}
		if other, dup := seen[fp]; dup {
			t.Errorf("keys %q and %q share fingerprint %q", k, other, fp)
		}
		seen[fp] = k
	}
	l, err := NewRedis(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Config{Rate: 1, Name: "test:" + KeyFingerprint("test_secret")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(l.Key(), "test_secret") {
		t.Errorf("key %q contains the API key", l.Key())
	}
}

// clocked is a limiter under test whose clock the test sets.
type clocked interface {
	set(now time.Time)
	// take books a slot ("wait", bounded by limit, -1 unbounded) or only a
	// free one ("reserve").
	take(mode string, limit time.Duration) (booked bool, delay time.Duration, err error)
	cooldown(d time.Duration) error
}

type modelClocked struct{ m *gcraModel }

func (c modelClocked) set(now time.Time) { c.m.now = now }
func (c modelClocked) take(mode string, limit time.Duration) (bool, time.Duration, error) {
	booked, delay := c.m.acquire(mode == "reserve", limit)
	return booked, delay, nil
}
func (c modelClocked) cooldown(d time.Duration) error { c.m.cooldown(d); return nil }

type miniClocked struct {
	m *miniredis.Miniredis
	l *RedisLimiter
}

func (c *miniClocked) set(now time.Time) { c.m.SetTime(now) }
func (c *miniClocked) take(mode string, limit time.Duration) (bool, time.Duration, error) {
	booked, delay, _, err := c.l.acquire(context.Background(), mode, limit)
	return booked, delay, err
}
func (c *miniClocked) cooldown(d time.Duration) error { return c.l.Cooldown(context.Background(), d) }

// step is one call in a scripted sequence run by runSteps.
type step struct {
	at         time.Duration // clock offset from t0
	op         string        // "reserve", "wait", "cooldown"
	limit      time.Duration // wait: longest acceptable delay, -1 unbounded; cooldown: d
	wantBooked bool
	wantDelay  time.Duration
}

// runSteps runs steps against the Redis script and its Go model
// (gcraModel) on a controlled clock (miniredis runs the Lua script, TIME
// included, and its TIME follows SetTime), so both are held to the same
// expected slots. Delays may differ from the expected ones by 2 µs (the
// script rounds to whole microseconds).
func runSteps(t *testing.T, cfg Config, steps []step) {
	t0 := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	impls := map[string]func(t *testing.T) clocked{
		"model": func(t *testing.T) clocked {
			m, err := newGCRAModel(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return modelClocked{m}
		},
		"miniredis": func(t *testing.T) clocked {
			m := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { _ = rdb.Close() })
			l, err := NewRedis(rdb, cfg)
			if err != nil {
				t.Fatal(err)
			}
			return &miniClocked{m: m, l: l}
		},
	}
	for name, mk := range impls {
		t.Run(name, func(t *testing.T) {
			c := mk(t)
			for i, s := range steps {
				c.set(t0.Add(s.at))
				if s.op == "cooldown" {
					if err := c.cooldown(s.limit); err != nil {
						t.Fatalf("step %d: cooldown: %v", i, err)
					}
					continue
				}
				limit := time.Duration(-1)
				if s.op == "wait" {
					limit = s.limit
				}
				booked, delay, err := c.take(s.op, limit)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if diff := delay - s.wantDelay; booked != s.wantBooked || diff < -2*time.Microsecond || diff > 2*time.Microsecond {
					t.Errorf("step %d (%s at +%v): booked, delay = %v, %v; want %v, %v", i, s.op, s.at, booked, delay, s.wantBooked, s.wantDelay)
				}
			}
		})
	}
}

func TestGCRASteps(t *testing.T) {
	const ms = time.Millisecond
	// Rate 10/s (T = 100 ms), burst 3 (tau = 200 ms).
	runSteps(t, Config{Rate: 10, Burst: 3, Name: "steps"}, []step{
		{0, "reserve", 0, true, 0},
		{0, "reserve", 0, true, 0},
		{0, "reserve", 0, true, 0},
		{0, "reserve", 0, false, 100 * ms}, // burst used up
		{50 * ms, "reserve", 0, false, 50 * ms},
		{50 * ms, "wait", -1, true, 50 * ms},
		{50 * ms, "wait", -1, true, 150 * ms},
		{50 * ms, "wait", 200 * ms, false, 250 * ms}, // would exceed: nothing booked
		{50 * ms, "wait", 250 * ms, true, 250 * ms},  // still the same slot
		{2000 * ms, "reserve", 0, true, 0},           // idle: burst refilled
		{2000 * ms, "reserve", 0, true, 0},
		{2000 * ms, "reserve", 0, true, 0},
		{2000 * ms, "reserve", 0, false, 100 * ms},
		{3000 * ms, "cooldown", 500 * ms, true, 0},
		{3100 * ms, "cooldown", 100 * ms, true, 0}, // never shortens
		{3100 * ms, "reserve", 0, false, 400 * ms},
		{3200 * ms, "wait", -1, true, 300 * ms},
		{3200 * ms, "wait", -1, true, 400 * ms}, // no burst right after a cooldown
		{3200 * ms, "wait", -1, true, 500 * ms},
		{4500 * ms, "reserve", 0, true, 0}, // the burst refills from the cooldown's end
		{4500 * ms, "reserve", 0, true, 0},
		{4500 * ms, "reserve", 0, true, 0},
		{4500 * ms, "reserve", 0, false, 100 * ms},
		{4600 * ms, "cooldown", 0, true, 0}, // d <= 0 does nothing
		{4600 * ms, "reserve", 0, true, 0},
	})
}

func TestAdaptiveSteps(t *testing.T) {
	const ms, s = time.Millisecond, time.Second
	// Rate 10/s (T = 100 ms), burst 1. A new cooldown multiplies the rate
	// factor by 0.8; it recovers by 0.01 per second.
	steps := []step{
		{0, "reserve", 0, true, 0},
		{0, "cooldown", s, true, 0},            // f = 0.8 at 0 s
		{500 * ms, "cooldown", 2 * s, true, 0}, // cooldown running: no second decrease
		{2500 * ms, "wait", -1, true, 0},       // f = 0.825: next slot 100/0.825 ms later
		{2500 * ms, "wait", -1, true, 121212 * time.Microsecond},
		{30 * s, "reserve", 0, true, 0}, // f recovered to 1
		{30 * s, "reserve", 0, false, 100 * ms},
		{40 * s, "cooldown", s, true, 0}, // a new episode: f = 0.8 at 40 s
		{40 * s, "cooldown", s, true, 0}, // the same episode (another pod's 429)
		{41 * s, "wait", -1, true, 0},
		{41 * s, "wait", -1, true, 123457 * time.Microsecond}, // 100/0.81 ms
	}
	// Twenty episodes, one every 2 s: the factor bottoms out at 0.1, so
	// slots are 1 s apart (recovery over the 2 s since the last is 0.02).
	for i := 0; i < 20; i++ {
		steps = append(steps, step{at: 100*s + time.Duration(i)*2*s, op: "cooldown", limit: s, wantBooked: true})
	}
	steps = append(steps,
		step{140 * s, "wait", -1, true, 0},
		step{140 * s, "wait", -1, true, 833333 * time.Microsecond}, // 100/0.12 ms
	)
	runSteps(t, Config{Rate: 10, Burst: 1, Name: "adaptive", Adaptive: true}, steps)
}
