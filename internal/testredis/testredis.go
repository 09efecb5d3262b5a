// Package testredis gives tests a real redis-server: the one named by
// REDIS_URL, or one started for the test when the redis-server binary
// exists. Without either, tests skip with a visible reason, except under
// CI=true where a missing Redis fails the test.
package testredis

import (
	"context"
	"fmt"
	"net"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() {
	t := s.t
	t.Helper()
	args := []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.opts.Port), "--dir", s.opts.Dir,
		"--save", "", "--daemonize", "no", "--logfile", filepath.Join(s.opts.Dir, "redis.log"),
	}
	if s.opts.AOF {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		args = append(args, "--appendonly", "no")
	}
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
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
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

// URL returns the server's redis:// URL (database 0).
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

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
