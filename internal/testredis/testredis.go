// Package testredis gives tests a real redis-server: the one named by
// REDIS_URL, or one started for the test when the redis-server binary
// exists. Without either, tests skip with a visible reason, except under
// CI=true where a missing Redis fails the test.
package testredis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL returns a redis:// URL of a real Redis for the test: REDIS_URL when
// set, else a redis-server started for this test (stopped in t.Cleanup).
// The URL's database is not flushed; tests must use their own key prefix or
// call Flush. A loopback address is enforced.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
		host, _, _ := net.SplitHostPort(opt.Addr)
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			t.Fatalf("REDIS_URL %q is not a loopback address; tests never use a remote Redis", opt.Addr)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			missing(t, fmt.Sprintf("REDIS_URL=%s does not answer: %v", u, err))
		}
		return u
	}
	s := Start(t, Options{})
	return s.URL()
}

// Fresh returns the URL of an empty redis-server private to this test,
// started on a free port and stopped in t.Cleanup. Use it when the test
// needs a whole keyspace to itself (asynq's fixed key names, FLUSHDB,
// counting keys): go test runs packages in parallel against the shared
// REDIS_URL server. It skips (or fails under CI=true) without the
// redis-server binary.
func Fresh(t testing.TB) string {
	t.Helper()
	return Start(t, Options{}).URL()
}

// Client returns a go-redis client on URL(t), closed in t.Cleanup.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	return ClientOn(t, URL(t))
}

// ClientOn returns a go-redis client on the redis:// URL u (such as
// Fresh's), closed in t.Cleanup.
func ClientOn(t testing.TB, u string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("real Redis required under CI=true: %s", why)
	}
	t.Skipf("skipping: needs a real Redis (%s); set REDIS_URL or install redis-server", why)
}

// Options configures a redis-server started by Start.
type Options struct {
	// AOF turns on appendonly with appendfsync everysec in a temp dir.
	AOF bool
	// Dir is the data directory; default a new t.TempDir().
	Dir string
	// Port is the port to listen on; default a free one.
	Port int
	// Password sets requirepass (and masterauth, for a replica); ACL user
	// "default". Change it at run time with SetPassword.
	Password string
	// ReplicaOf makes the server a replica of this host:port.
	ReplicaOf string
	// Args are more redis-server arguments ("--name", "value", …).
	Args []string

	// sentinelConf, when set, runs the server as a sentinel with this
	// configuration (see StartTopology).
	sentinelConf string
}

// Server is a redis-server process owned by a test.
type Server struct {
	t    testing.TB
	opts Options
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a redis-server on 127.0.0.1 on a free port and stops it in
// t.Cleanup. It skips (or fails under CI=true) if redis-server is missing.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing(t, "no redis-server binary in PATH")
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Port == 0 {
		opts.Port = FreePort(t)
	}
	s := &Server{t: t, opts: opts}
	s.start()
	t.Cleanup(func() { s.Kill() })
	return s
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	// A port the kernel hands out for :0 is in the ephemeral range, where
	// any outgoing connection (this machine's tests open thousands to
	// Redis) may take it before the caller binds it. A free port below that
	// range is only ever taken by an explicit bind.
	if lo, ok := ephemeralLow(); ok && lo > 11000 {
		for range 100 {
			port := 10000 + rand.IntN(lo-10000)
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				_ = l.Close()
				return port
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ephemeralLow returns the low end of Linux's ephemeral port range.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	lo, err := strconv.Atoi(f[0])
	return lo, err == nil
}

func (s *Server) start() {
	t := s.t
	t.Helper()
	args := []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.opts.Port), "--dir", s.opts.Dir,
		"--save", "", "--daemonize", "no", "--logfile", filepath.Join(s.opts.Dir, "redis.log"),
	}
	switch {
	case s.opts.sentinelConf != "":
		conf := filepath.Join(s.opts.Dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil { // a restart keeps what the sentinel learnt
			if err := os.WriteFile(conf, []byte(s.opts.sentinelConf), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		args = []string{conf, "--sentinel", "--bind", "127.0.0.1", "--port", strconv.Itoa(s.opts.Port),
			"--dir", s.opts.Dir, "--daemonize", "no", "--logfile", filepath.Join(s.opts.Dir, "redis.log")}
	case s.opts.AOF:
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	default:
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
		if s.opts.sentinelConf == "" {
			args = append(args, "--masterauth", s.opts.Password)
		}
	}
	if s.opts.ReplicaOf != "" {
		host, port, _ := net.SplitHostPort(s.opts.ReplicaOf)
		args = append(args, "--replicaof", host, port)
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 64)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if reply := string(buf[:n]); strings.HasPrefix(reply, "+PONG") || strings.HasPrefix(reply, "-NOAUTH") {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.opts.Dir, "redis.log"))
			t.Fatalf("redis-server on %s did not answer in 10s; log:\n%s", s.Addr(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr returns host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.opts.Port) }

// URL returns the server's redis:// URL (database 0, with its password).
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return "redis://:" + url.QueryEscape(s.opts.Password) + "@" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// SetPassword changes the server's requirepass at run time (a rotated
// password) and disconnects its clients: every new connection needs pw.
func (s *Server) SetPassword(pw string) {
	s.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.opts.Password})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.ConfigSet(ctx, "requirepass", pw).Err(); err != nil {
		s.t.Fatalf("CONFIG SET requirepass: %v", err)
	}
	// As after a restart with the new password: every client reconnects.
	_ = rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err()
	s.opts.Password = pw
}

// PID returns the process id of the running server.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Kill stops the server with SIGKILL (a crash: nothing flushed beyond what
// AOF already wrote) and waits for it to exit. It is safe to call twice.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Restart starts the server again on the same port and directory (after
// Kill), reloading its AOF when AOF is on.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}
