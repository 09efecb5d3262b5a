package redisurl_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/redisurl"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

func TestParse(t *testing.T) {
	tests := []struct {
		raw  string
		want func(t *testing.T, u *redisurl.URL)
	}{
		{"redis://127.0.0.1:6379/2", func(t *testing.T, u *redisurl.URL) {
			o := u.Options()
			if o.Addr != "127.0.0.1:6379" || o.DB != 2 || o.Password != "" || u.Sentinel() {
				t.Errorf("got %+v", o)
			}
		}},
		{"rediss://bob:pw1@cache.example:6380/1?dial_timeout=3s&skip_verify=true", func(t *testing.T, u *redisurl.URL) {
			o := u.Options()
			if o.Username != "bob" || o.Password != "pw1" || o.DB != 1 || o.TLSConfig == nil ||
				!o.TLSConfig.InsecureSkipVerify || o.DialTimeout != 3*time.Second {
				t.Errorf("got %+v", o)
			}
		}},
		{"redis-sentinel://:s3cret@h1:26379,h2:26380,h3/3?master=mymaster", func(t *testing.T, u *redisurl.URL) {
			f := u.FailoverOptions()
			if f.MasterName != "mymaster" || f.DB != 3 || u.DB() != 3 || f.Password != "s3cret" ||
				f.SentinelPassword != "s3cret" || strings.Join(f.SentinelAddrs, ",") != "h1:26379,h2:26380,h3:26379" ||
				f.TLSConfig != nil || !u.Sentinel() {
				t.Errorf("got %+v", f)
			}
		}},
		{"redis-sentinel://app:pw@h1:1/5?master_name=m&sentinel_username=sen&sentinel_password=spw&tls=true&read_timeout=2s", func(t *testing.T, u *redisurl.URL) {
			f := u.FailoverOptions()
			if f.MasterName != "m" || f.DB != 5 || f.Username != "app" || f.Password != "pw" ||
				f.SentinelUsername != "sen" || f.SentinelPassword != "spw" || f.TLSConfig == nil ||
				f.TLSConfig.ServerName != "" || f.ReadTimeout != 2*time.Second {
				t.Errorf("got %+v", f)
			}
		}},
		{"redis-sentinel://:pw@h1:1/0?master=m&sentinel_password=", func(t *testing.T, u *redisurl.URL) {
			if f := u.FailoverOptions(); f.Password != "pw" || f.SentinelPassword != "" {
				t.Errorf("got %+v", f)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := redisurl.Parse(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			tt.want(t, u)
			if strings.Contains(u.String(), "pw") || strings.Contains(u.String(), "s3cret") {
				t.Errorf("String() = %q shows a secret", u)
			}
		})
	}
}

func TestParseErrorsHideThePassword(t *testing.T) {
	for _, raw := range []string{
		"redis://:PW_SECRET@127.0.0.1:notaport/0",
		"redis://:PW_SECRET@127.0.0.1:6379/notadb",
		"redis://PW_SECRET@127.0.0.1:6379/0?bogus=1",
		"http://:PW_SECRET@127.0.0.1:6379/0",
		"redis-sentinel://:PW_SECRET@h1:1,h2:2/0",
		"redis-sentinel://:PW_SECRET@h1:1/x?master=m",
		"redis-sentinel://:PW_SECRET@h1:notaport/0?master=m",
		"redis-sentinel://h1:1/0?master=m&sentinel_password=PW_SECRET&tls=maybe",
		"redis://127.0.0.1:6379/0?master=m",
		"redis://:PW_SECRET@127.0.0.1:6379/0\x7f",
	} {
		_, err := redisurl.Parse(raw)
		if err == nil {
			t.Errorf("Parse(%q): no error", raw)
			continue
		}
		if !errors.Is(err, redisurl.ErrInvalid) || strings.Contains(err.Error(), "PW_SECRET") {
			t.Errorf("Parse(%q) = %v; want ErrInvalid without the password", raw, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"redis://:pw@h:1/0":        "redis://:xxxxx@h:1/0",
		"redis://user:pw@h:1/0":    "redis://user:xxxxx@h:1/0",
		"redis://pw@h:1/0":         "redis://xxxxx@h:1/0",
		"redis://h:1/0":            "redis://h:1/0",
		"redis://:pw@h:notaport/0": "redis://xxxxx@h:notaport/0",
		"redis-sentinel://a:1,b:2/3?master=m&sentinel_password=pw": "redis-sentinel://a:1,b:2/3?master=m&sentinel_password=xxxxx",
		"https://api.example/v1?token=abc":                         "https://api.example/v1?token=xxxxx",
	} {
		if got := redisurl.Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestSentinelURLReachesTheMastersDatabaseWithItsPassword runs a real
// Sentinel topology with a password: the client of a sentinel URL writes
// to the URL's database on the master, authenticated (asynq.ParseRedisURI
// drops the database and gives the password to the sentinels only).
func TestSentinelURLReachesTheMastersDatabaseWithItsPassword(t *testing.T) {
	tp := testredis.StartTopology(t, testredis.TopologyOptions{Replicas: 1, Sentinels: 1, Password: "pw-topo"})
	u, err := redisurl.Parse(tp.URL(3))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, rdb := range map[string]redis.UniversalClient{
		"NewClient": u.NewClient(redisurl.Tuning{Protocol: 2}),
		"AsynqOpt":  u.AsynqOpt(redisurl.Tuning{}).MakeRedisClient().(redis.UniversalClient),
	} {
		if err := rdb.Set(ctx, "redisurl-test-"+name, "x", 0).Err(); err != nil {
			t.Fatalf("%s: SET: %v", name, err)
		}
		_ = rdb.Close()
		direct := redis.NewClient(&redis.Options{Addr: tp.Master.Addr(), Password: "pw-topo", DB: 3})
		n, err := direct.Exists(ctx, "redisurl-test-"+name).Result()
		_ = direct.Close()
		if err != nil || n != 1 {
			t.Fatalf("%s: key not in database 3 of the master (%d, %v)", name, n, err)
		}
	}
}

func TestDurabilityOptions(t *testing.T) {
	for raw, want := range map[string]redisurl.Durability{
		"redis://h:1/0": {Replicas: 0, Timeout: time.Second},
		"redis://h:1/0?wait_replicas=2&wait_timeout=250ms": {Replicas: 2, Timeout: 250 * time.Millisecond},
		"redis-sentinel://h:1/0?master=m":                  {Replicas: 1, Timeout: time.Second},
		"redis-sentinel://h:1/0?master=m&wait_replicas=0":  {Replicas: 0, Timeout: time.Second},
	} {
		u, err := redisurl.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Durability(); got != want {
			t.Errorf("%s: Durability() = %+v, want %+v", raw, got, want)
		}
	}
	for _, raw := range []string{"redis://h:1/0?wait_replicas=-1", "redis://h:1/0?wait_timeout=soon"} {
		if _, err := redisurl.Parse(raw); !errors.Is(err, redisurl.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", raw, err)
		}
	}
}

// TestDurabilityWait: WAIT succeeds once a replica holds the writes, and
// times out with ErrNotDurable on a Redis without replicas.
func TestDurabilityWait(t *testing.T) {
	ctx := context.Background()
	tp := testredis.StartTopology(t, testredis.TopologyOptions{Replicas: 1, Sentinels: 1})
	withReplica := redis.NewClient(&redis.Options{Addr: tp.Master.Addr()})
	defer withReplica.Close()
	alone := testredis.ClientOn(t, testredis.Fresh(t))
	d := redisurl.Durability{Replicas: 1, Timeout: 200 * time.Millisecond}
	// The replica's first sync may still be under way.
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if err = d.Wait(ctx, withReplica); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("Wait with a replica: %v", err)
	}
	if err := d.Wait(ctx, alone); !errors.Is(err, redisurl.ErrNotDurable) {
		t.Errorf("Wait without a replica = %v, want ErrNotDurable", err)
	}
	if err := (redisurl.Durability{}).Wait(ctx, alone); err != nil {
		t.Errorf("Wait with Replicas 0 = %v, want nil at once", err)
	}
}

// TestWaiterSharesWaits: 200 goroutines each write a key and wait through
// one Waiter: every key is on the replica when its Wait returns, and the
// master ran far fewer WAITs than callers.
func TestWaiterSharesWaits(t *testing.T) {
	ctx := context.Background()
	master := testredis.Start(t, testredis.Options{})
	replica := testredis.Start(t, testredis.Options{ReplicaOf: master.Addr()})
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr(), PoolSize: 50})
	defer rdb.Close()
	onReplica := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer onReplica.Close()
	d := redisurl.Durability{Replicas: 1, Timeout: 2 * time.Second}
	for deadline := time.Now().Add(15 * time.Second); d.Wait(ctx, rdb) != nil; {
		if time.Now().After(deadline) {
			t.Fatal("the replica did not sync in 15 s")
		}
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	w := d.NewWaiter(rdb)
	const callers = 200
	errs := make(chan error, callers)
	for i := range callers {
		go func() {
			key := fmt.Sprintf("waiter:%d", i)
			if err := rdb.Set(ctx, key, "v", 0).Err(); err != nil {
				errs <- err
				return
			}
			if err := w.Wait(ctx); err != nil {
				errs <- fmt.Errorf("Wait: %w", err)
				return
			}
			// WAIT confirmed the replica received the write; it applies
			// what it received before answering a later command.
			if v, err := onReplica.Get(ctx, key).Result(); err != nil || v != "v" {
				errs <- fmt.Errorf("%s on the replica after Wait: %q, %v", key, v, err)
				return
			}
			errs <- nil
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	stats, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var waits int
	for line := range strings.SplitSeq(stats, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_wait:calls="); ok {
			waits, _ = strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		}
	}
	t.Logf("%d callers, %d WAITs", callers, waits)
	if waits == 0 || waits >= callers/2 {
		t.Errorf("%d WAITs for %d callers; want a few shared ones", waits, callers)
	}
	if err := (redisurl.Durability{}).NewWaiter(rdb).Wait(ctx); err != nil {
		t.Errorf("a Waiter of Replicas 0 = %v, want nil", err)
	}
}
