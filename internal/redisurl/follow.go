package redisurl

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// follower makes a sentinel client follow a master switch within a
// moment of the first sentinel announcing it. go-redis listens to one
// sentinel only, and keeps its connections to the old master until that
// master is demoted (~10 s after a SENTINEL FAILOVER, all the while
// accepting writes that its demotion then discards). The follower
// subscribes to +switch-master on every sentinel; on the first
// announcement it closes every connection to the old master, and new
// connections meant for it go to the new one, even while go-redis' own
// sentinel still names the old one.
type follower struct {
	master   string
	onSwitch func(old, new string)
	dial     *net.Dialer
	tls      *tls.Config

	mu      sync.Mutex
	seen    string              // the newest master announced, onSwitch called or being called
	current string              // the newest master followed ("" before any switch)
	demoted map[string]bool     // addresses announced as old masters
	conns   map[net.Conn]string // open connections by remote address
	subs    []*redis.PubSub
	clients []*redis.SentinelClient
}

// followSentinels starts a follower for f and installs its dialer in f.
func followSentinels(f *redis.FailoverOptions, onSwitch func(old, new string)) *follower {
	timeout := f.DialTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	fw := &follower{master: f.MasterName, onSwitch: onSwitch, tls: f.TLSConfig,
		dial:    &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute},
		demoted: map[string]bool{}, conns: map[net.Conn]string{}}
	f.Dialer = fw.dialContext
	for _, addr := range f.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Username: f.SentinelUsername,
			Password: f.SentinelPassword, TLSConfig: f.TLSConfig, DialTimeout: timeout, Protocol: 2})
		ps := sc.Subscribe(context.Background(), "+switch-master")
		fw.clients = append(fw.clients, sc)
		fw.subs = append(fw.subs, ps)
		go fw.listen(ps)
	}
	return fw
}

// listen handles one sentinel's announcements until its PubSub is closed
// (go-redis re-subscribes by itself after a broken connection).
func (fw *follower) listen(ps *redis.PubSub) {
	for msg := range ps.Channel() {
		// "<master> <old ip> <old port> <new ip> <new port>"
		p := strings.Fields(msg.Payload)
		if len(p) != 5 || p[0] != fw.master {
			continue
		}
		fw.switchTo(net.JoinHostPort(p[1], p[2]), net.JoinHostPort(p[3], p[4]))
	}
}

// switchTo calls onSwitch, then records the switch (new connections go
// to the new master) and closes the connections to the old master: what
// onSwitch sets up is in place before any command reaches the new master.
func (fw *follower) switchTo(old, new string) {
	fw.mu.Lock()
	if fw.seen == new {
		fw.mu.Unlock()
		return
	}
	fw.seen = new
	fw.mu.Unlock()
	if fw.onSwitch != nil {
		fw.onSwitch(old, new)
	}
	fw.mu.Lock()
	fw.current = new
	fw.demoted[old] = true
	delete(fw.demoted, new)
	var stale []net.Conn
	for c, addr := range fw.conns {
		if addr == old {
			stale = append(stale, c)
		}
	}
	fw.mu.Unlock()
	for _, c := range stale {
		_ = c.Close()
	}
}

// dialContext is the client's dialer (for the master and, through
// go-redis, its own sentinel connections): a dial to an address announced
// as an old master goes to the newest master instead.
func (fw *follower) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	fw.mu.Lock()
	if fw.demoted[addr] && fw.current != "" {
		addr = fw.current
	}
	fw.mu.Unlock()
	var c net.Conn
	var err error
	if fw.tls != nil {
		c, err = (&tls.Dialer{NetDialer: fw.dial, Config: fw.tls}).DialContext(ctx, network, addr)
	} else {
		c, err = fw.dial.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	fw.mu.Lock()
	fw.conns[c] = addr
	fw.mu.Unlock()
	if sc, ok := c.(syscall.Conn); ok {
		// go-redis checks a pooled connection's health through its file
		// descriptor: keep SyscallConn visible.
		return &trackedSysConn{trackedConn{c, fw}, sc}, nil
	}
	return &trackedConn{c, fw}, nil
}

// close stops the subscriptions.
func (fw *follower) close() {
	for _, ps := range fw.subs {
		_ = ps.Close()
	}
	for _, sc := range fw.clients {
		_ = sc.Close()
	}
}

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	fw *follower
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	c.fw.mu.Lock()
	delete(c.fw.conns, c.Conn)
	c.fw.mu.Unlock()
	return c.Conn.Close()
}

type trackedSysConn struct {
	trackedConn
	sc syscall.Conn
}

// SyscallConn gives the underlying connection's raw descriptor.
func (c *trackedSysConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }

// followingClient is a failover client with its follower.
type followingClient struct {
	*redis.Client
	fw *follower
}

// Close stops the follower and closes the client.
func (c *followingClient) Close() error {
	c.fw.close()
	return c.Client.Close()
}
