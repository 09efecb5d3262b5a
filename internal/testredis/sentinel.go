package testredis

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TopologyOptions configures StartTopology.
type TopologyOptions struct {
	// Replicas is the number of replicas of the master (default 2).
	Replicas int
	// Sentinels is the number of sentinels (default 3).
	Sentinels int
	// Quorum is the sentinels' quorum (default a majority).
	Quorum int
	// Password is every server's and sentinel's requirepass (optional).
	Password string
	// AOF turns on appendonly (everysec) on the data servers.
	AOF bool
	// DownAfter is the sentinels' down-after-milliseconds (default 1 s).
	DownAfter time.Duration
	// Args are more redis-server arguments for the data servers.
	Args []string
}

// Topology is a Sentinel set-up on loopback ports owned by a test: a
// master, its replicas and the sentinels watching them (master set
// MasterName), all stopped in t.Cleanup.
type Topology struct {
	t         testing.TB
	opts      TopologyOptions
	Master    *Server
	Replicas  []*Server
	Sentinels []*Server
}

// MasterName is the master set of a Topology.
const MasterName = "mymaster"

// StartTopology starts a master, its replicas and the sentinels, and
// returns once the sentinels answer; call WaitSettled before a failover.
// It skips (or fails under CI=true) without
// redis-server.
func StartTopology(t testing.TB, o TopologyOptions) *Topology {
	t.Helper()
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	if o.Sentinels == 0 {
		o.Sentinels = 3
	}
	if o.Quorum == 0 {
		o.Quorum = o.Sentinels/2 + 1
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	tp := &Topology{t: t, opts: o}
	tp.Master = Start(t, Options{AOF: o.AOF, Password: o.Password, Args: o.Args})
	for range o.Replicas {
		tp.Replicas = append(tp.Replicas, Start(t, Options{AOF: o.AOF, Password: o.Password, Args: o.Args,
			ReplicaOf: tp.Master.Addr()}))
	}
	host, port, _ := net.SplitHostPort(tp.Master.Addr())
	var conf strings.Builder
	fmt.Fprintf(&conf, "sentinel monitor %s %s %s %d\n", MasterName, host, port, o.Quorum)
	fmt.Fprintf(&conf, "sentinel down-after-milliseconds %s %d\n", MasterName, o.DownAfter.Milliseconds())
	fmt.Fprintf(&conf, "sentinel failover-timeout %s 10000\n", MasterName)
	fmt.Fprintf(&conf, "sentinel parallel-syncs %s %d\n", MasterName, o.Replicas)
	if o.Password != "" {
		fmt.Fprintf(&conf, "sentinel auth-pass %s %s\n", MasterName, o.Password)
		fmt.Fprintf(&conf, "sentinel sentinel-pass %s\n", o.Password)
	}
	for range o.Sentinels {
		tp.Sentinels = append(tp.Sentinels, Start(t, Options{Password: o.Password, sentinelConf: conf.String()}))
	}
	return tp
}

// WaitSettled waits until the master sees every replica online and every
// sentinel knows every replica and the other sentinels (up to ~10 s: a
// sentinel learns of replicas from the master's INFO, polled every 10 s).
func (tp *Topology) WaitSettled() {
	t := tp.t
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, s := range tp.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), Password: tp.opts.Password})
			m, err := sc.Master(ctx, MasterName).Result()
			_ = sc.Close()
			if err != nil || m["num-slaves"] != strconv.Itoa(len(tp.Replicas)) ||
				m["num-other-sentinels"] != strconv.Itoa(len(tp.Sentinels)-1) {
				ok = false
				break
			}
		}
		if ok {
			rdb := redis.NewClient(&redis.Options{Addr: tp.Master.Addr(), Password: tp.opts.Password})
			info, err := rdb.Info(ctx, "replication").Result()
			_ = rdb.Close()
			ok = err == nil && strings.Count(info, "state=online") == len(tp.Replicas)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel topology did not settle in 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URL returns the topology's redis-sentinel:// URL for database db, with
// the password (for the master, the replicas and the sentinels).
func (tp *Topology) URL(db int) string {
	var addrs []string
	for _, s := range tp.Sentinels {
		addrs = append(addrs, s.Addr())
	}
	user := ""
	if tp.opts.Password != "" {
		user = ":" + url.QueryEscape(tp.opts.Password) + "@"
	}
	return fmt.Sprintf("redis-sentinel://%s%s/%d?master=%s", user, strings.Join(addrs, ","), db, MasterName)
}

// MasterAddr returns the master's address as the first answering sentinel
// gives it.
func (tp *Topology) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, s := range tp.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), Password: tp.opts.Password})
		a, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
		_ = sc.Close()
		if err == nil {
			return net.JoinHostPort(a[0], a[1]), nil
		}
		last = err
	}
	return "", last
}

// Server returns the data server (master or replica) listening on addr, or nil.
func (tp *Topology) Server(addr string) *Server {
	for _, s := range append([]*Server{tp.Master}, tp.Replicas...) {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// Failover asks a sentinel for a failover (SENTINEL FAILOVER) and returns
// at once; the promotion follows within a second or two.
func (tp *Topology) Failover(ctx context.Context) error {
	sc := redis.NewSentinelClient(&redis.Options{Addr: tp.Sentinels[0].Addr(), Password: tp.opts.Password})
	defer sc.Close()
	return sc.Failover(ctx, MasterName).Err()
}

// WaitMasterChange waits until the sentinels name a master other than old
// and returns it.
func (tp *Topology) WaitMasterChange(ctx context.Context, old string) (string, error) {
	for {
		a, err := tp.MasterAddr(ctx)
		if err == nil && a != old {
			return a, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("master still %s: %w", old, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
