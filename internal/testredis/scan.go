package testredis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/redisurl"
)

// ScanSecrets fails the test if a needle (a secret) appears in any key
// name or value of the Redis at url: every key is SCANned and its value
// read by type. Findings are printed with the needles hidden.
func ScanSecrets(t testing.TB, url string, needles []string) {
	t.Helper()
	u, err := redisurl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := u.NewClient(redisurl.Tuning{})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	found := 0
	check := func(where, s string) {
		for _, n := range needles {
			if strings.Contains(s, n) {
				if found++; found <= 10 {
					t.Errorf("secret found in Redis %s: %q", where, hide(s[:min(len(s), 300)], needles))
				}
			}
		}
	}
	keys := 0
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	var batch []string
	flush := func() {
		if len(batch) == 0 {
			return
		}
		types := make([]*redis.StatusCmd, len(batch))
		pipe := rdb.Pipeline()
		for i, k := range batch {
			types[i] = pipe.Type(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("redis TYPE: %v", err)
		}
		vals := make([]redis.Cmder, len(batch))
		pipe = rdb.Pipeline()
		for i, k := range batch {
			switch typ := types[i].Val(); typ {
			case "string":
				vals[i] = pipe.Get(ctx, k)
			case "hash":
				vals[i] = pipe.HGetAll(ctx, k)
			case "list":
				vals[i] = pipe.LRange(ctx, k, 0, -1)
			case "set":
				vals[i] = pipe.SMembers(ctx, k)
			case "zset":
				vals[i] = pipe.ZRangeWithScores(ctx, k, 0, -1)
			case "stream":
				vals[i] = pipe.XRange(ctx, k, "-", "+")
			case "none": // expired meanwhile
			default:
				t.Errorf("Redis key %q has type %s, which the scan cannot read", k, typ)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			t.Fatalf("redis read values: %v", err)
		}
		for i, k := range batch {
			if vals[i] == nil {
				continue
			}
			check("value of "+k, vals[i].String())
		}
		batch = batch[:0]
	}
	for iter.Next(ctx) {
		k := iter.Val()
		keys++
		check("key name", k)
		batch = append(batch, k)
		if len(batch) == 500 {
			flush()
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("redis SCAN: %v", err)
	}
	flush()
	if keys == 0 {
		t.Errorf("Redis at %s holds no key: nothing was scanned", url)
	}
	if found > 10 {
		t.Errorf("... %d secrets found in Redis in all", found)
	}
}

// hide replaces the needles in a snippet before it is printed.
func hide(s string, needles []string) string {
	for _, n := range needles {
		s = strings.ReplaceAll(s, n, "<SECRET>")
	}
	return s
}
