package worker

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/refonte"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(nil, envFunc(map[string]string{
		EnvTestKey: "test_abc", EnvCallbackAuthKey: "cbsecret",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{RedisURL: DefaultRedisURL, APIURL: DefaultAPIURL, TestKey: "test_abc", CallbackAuthKey: "cbsecret",
		Concurrency: 50, Listen: ":8080", RateLimit: 10, RateBurst: 1, CallbackGrace: 10 * time.Minute,
		ShutdownTimeout: 30 * time.Second, MaxCallbacks: DefaultMaxCallbacks,
		KeptCallbackBytes: DefaultKeptCallbackBytes, AdminListen: "127.0.0.1:8081"}
	if c != want {
		t.Errorf("LoadConfig defaults:\n got %+v\nwant %+v", c, want)
	}
	if m := c.Modes(); len(m) != 1 || m[0] != refonte.ModeTest {
		t.Errorf("Modes = %v, want [test]", m)
	}
}

func TestLoadConfigFlagsAndFiles(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live")
	cb := filepath.Join(dir, "cb")
	if err := os.WriteFile(live, []byte("  live_xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cb, []byte("cbkey\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig([]string{"-concurrency", "200", "-listen", "127.0.0.1:0", "-rate-limit", "100",
		"-rate-burst", "10", "-callback-grace", "1m", "-shutdown-timeout", "5s", "-live-daily-limit", "50"},
		envFunc(map[string]string{
			EnvRedisURL: "rediss://:pw@redis.example:6380/2", EnvAPIURL: "http://127.0.0.1:9/v1",
			EnvTestKey: "test_a", EnvLiveKey + "_FILE": live, EnvCallbackAuthKey + "_FILE": cb,
		}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.LiveKey.Reveal() != "live_xyz" || c.CallbackAuthKey.Reveal() != "cbkey" {
		t.Errorf("secrets from files not trimmed/read")
	}
	if c.Concurrency != 200 || c.Listen != "127.0.0.1:0" || c.RateLimit != 100 || c.RateBurst != 10 ||
		c.CallbackGrace != time.Minute || c.ShutdownTimeout != 5*time.Second || c.LiveDailyLimit != 50 ||
		c.RedisURL != "rediss://:pw@redis.example:6380/2" || c.APIURL != "http://127.0.0.1:9/v1" {
		t.Errorf("flags not applied: %+v", c)
	}
	if m := c.Modes(); len(m) != 2 || m[0] != refonte.ModeLive || m[1] != refonte.ModeTest {
		t.Errorf("Modes = %v, want [live test]", m)
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, "live_xyz") || strings.Contains(s, "cbkey") || strings.Contains(s, "test_a ") {
		t.Errorf("config prints a secret: %s", s)
	}
}

func TestLoadConfigRefusals(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func() map[string]string {
		return map[string]string{EnvTestKey: "test_k", EnvCallbackAuthKey: "cb"}
	}
	cases := []struct {
		name string
		args []string
		edit func(map[string]string)
		want string
	}{
		{"no key", nil, func(m map[string]string) { delete(m, EnvTestKey) }, "no API key"},
		{"bad prefix", nil, func(m map[string]string) { m[EnvTestKey] = "sk_123" }, "test_"},
		{"live key as test", nil, func(m map[string]string) { m[EnvTestKey] = "live_123" }, "holds a live key"},
		{"test key as live", nil, func(m map[string]string) { m[EnvLiveKey] = "test_123" }, "holds a test key"},
		{"no callback key", nil, func(m map[string]string) { delete(m, EnvCallbackAuthKey) }, EnvCallbackAuthKey + " is required"},
		{"both var and file", nil, func(m map[string]string) { m[EnvTestKey+"_FILE"] = empty }, "both"},
		{"missing file", nil, func(m map[string]string) {
			delete(m, EnvCallbackAuthKey)
			m[EnvCallbackAuthKey+"_FILE"] = filepath.Join(dir, "nope")
		}, "_FILE"},
		{"empty file", nil, func(m map[string]string) {
			delete(m, EnvCallbackAuthKey)
			m[EnvCallbackAuthKey+"_FILE"] = empty
		}, "empty"},
		{"negative callback cap", []string{"-max-callbacks", "-1"}, nil, "-max-callbacks"},
		{"negative kept bytes", []string{"-kept-callbacks-bytes", "-1"}, nil, "-kept-callbacks-bytes"},
		{"bad redis scheme", nil, func(m map[string]string) { m[EnvRedisURL] = "http://x:1" }, "unsupported scheme"},
		{"sentinel without master", nil, func(m map[string]string) { m[EnvRedisURL] = "redis-sentinel://a:1,b:2" }, "master"},
		{"bad api url", nil, func(m map[string]string) { m[EnvAPIURL] = "ftp://x" }, EnvAPIURL},
		{"concurrency 0", []string{"-concurrency", "0"}, nil, "-concurrency"},
		{"negative rate", []string{"-rate-limit", "-1"}, nil, "-rate-limit"},
		{"burst 0", []string{"-rate-burst", "0"}, nil, "-rate-burst"},
		{"negative cap", []string{"-live-daily-limit", "-1"}, nil, "-live-daily-limit"},
		{"console reachable without a token", []string{"-admin-listen", ":8081"}, nil, EnvAdminToken},
		{"console on 0.0.0.0 without a token", []string{"-admin-listen", "0.0.0.0:9000"}, nil, EnvAdminToken},
		{"console on the callback listener", []string{"-listen", "127.0.0.1:8081"}, nil, "its own"},
		{"console address without a port", []string{"-admin-listen", "localhost"}, nil, "-admin-listen"},
		{"console token both var and file", nil, func(m map[string]string) {
			m[EnvAdminToken] = "tok"
			m[EnvAdminToken+"_FILE"] = empty
		}, "both"},
		{"unknown flag", []string{"-nope"}, nil, "-nope"},
		{"extra args", []string{"x"}, nil, "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := base()
			if c.edit != nil {
				c.edit(env)
			}
			_, err := LoadConfig(c.args, envFunc(env), io.Discard)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadConfig = %v, want ErrConfig mentioning %q", err, c.want)
			}
			for _, v := range env {
				if len(v) > 3 && strings.HasPrefix(v, "test_") && strings.Contains(err.Error(), v) {
					t.Errorf("error leaks a key: %v", err)
				}
			}
		})
	}
}

func TestLoadConfigConsole(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tok, []byte("console-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvTestKey: "test_k", EnvCallbackAuthKey: "cb", EnvAdminToken + "_FILE": tok}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "127.0.0.1:8081"},
		{[]string{"-admin-listen", ":8081"}, ":8081"}, // a token is set: any address
		{[]string{"-admin-listen", ""}, ""},           // no console
	} {
		c, err := LoadConfig(tc.args, envFunc(env), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if c.AdminListen != tc.want || c.AdminToken.Reveal() != "console-secret" {
			t.Errorf("%v: AdminListen %q, token read %v; want %q", tc.args, c.AdminListen, c.AdminToken.Reveal() == "console-secret", tc.want)
		}
	}
}

func TestLoadConfigHelp(t *testing.T) {
	var out strings.Builder
	_, err := LoadConfig([]string{"-h"}, envFunc(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-live-daily-limit", "-rate-limit", EnvCallbackAuthKey, "NAME_FILE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

func TestSplitConcurrency(t *testing.T) {
	cases := []struct {
		conc, fetchers int
		want           []int
	}{
		{50, 0, []int{5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4}},
		{1, 0, []int{1}},
		{7, 0, []int{7}},
		{9, 0, []int{5, 4}},
		{200, 0, []int{13, 13, 13, 13, 13, 13, 13, 13, 12, 12, 12, 12, 12, 12, 12, 12}},
		{10, 4, []int{3, 3, 2, 2}},
		{2, 5, []int{1, 1}},
	}
	for _, c := range cases {
		if got := splitConcurrency(c.conc, c.fetchers); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("splitConcurrency(%d, %d) = %v, want %v", c.conc, c.fetchers, got, c.want)
		}
	}
}

func TestPrefetch(t *testing.T) {
	for _, c := range []struct{ conc, prefetch, want int }{
		{50, 0, 12},
		{200, 0, 50},
		{3, 0, 1},
		{1, 0, 1},
		{50, 7, 7},
		{50, -1, 0},
	} {
		cfg := Config{Concurrency: c.conc, Prefetch: c.prefetch}
		if got := cfg.prefetch(); got != c.want {
			t.Errorf("Config{Concurrency: %d, Prefetch: %d}.prefetch() = %d, want %d", c.conc, c.prefetch, got, c.want)
		}
	}
}

func TestQueuePriorities(t *testing.T) {
	live, test := refonte.ModeLive, refonte.ModeTest
	cases := []struct {
		name     string
		modes    []refonte.Mode
		lowFirst bool
		want     []string // served first to last
	}{
		{"test", []refonte.Mode{test}, false, []string{"refonte-test-high", "refonte-test", "refonte-test-low"}},
		{"test low lane", []refonte.Mode{test}, true, []string{"refonte-test-low", "refonte-test-high", "refonte-test"}},
		{"both modes: live first", []refonte.Mode{live, test}, false, []string{"refonte-live-high", "refonte-live", "refonte-live-low",
			"refonte-test-high", "refonte-test", "refonte-test-low"}},
		{"both modes, low lane: live first", []refonte.Mode{live, test}, true, []string{"refonte-live-low", "refonte-live-high", "refonte-live",
			"refonte-test-low", "refonte-test-high", "refonte-test"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := queuePriorities(c.modes, c.lowFirst)
			if len(got) != len(c.want) {
				t.Fatalf("queues = %v, want %v", got, c.want)
			}
			for i, q := range c.want {
				if got[q] != len(c.want)-i {
					t.Errorf("queues = %v: %s has priority %d, want %d (order %v)", got, q, got[q], len(c.want)-i, c.want)
				}
			}
		})
	}
}

func TestLowLaneSlots(t *testing.T) {
	for _, c := range []struct{ slots, want int }{{1, 0}, {2, 1}, {16, 1}, {62, 3}, {250, 15}} {
		if got := lowLaneSlots(c.slots); got != c.want {
			t.Errorf("lowLaneSlots(%d) = %d, want %d", c.slots, got, c.want)
		}
	}
}
