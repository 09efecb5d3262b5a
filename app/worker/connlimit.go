package worker

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Connection cap of the public listener (/callback, /healthz, /readyz,
// /metrics). Without one, every connection a client opens costs a file
// descriptor and a goroutine until its timeouts close it, and a flood of
// them exhausts the descriptors the worker needs for Redis and the API.
const (
	// MaxConnectionsCeiling bounds the automatic -max-connections: about
	// 16 KiB of buffers and stack per open connection, so 4,096 cost
	// ~64 MiB at most; legitimate traffic (a load balancer's keep-alive
	// connections, the platform's callbacks) needs a few hundred.
	MaxConnectionsCeiling = 4096
	// MaxConnectionsFloor is the least automatic -max-connections.
	MaxConnectionsFloor = 64
	// HealthReserve is how many connections the worker accepts beyond
	// -max-connections for health checks and metrics scrapes: a request
	// arriving on one of them is served only for GET /healthz, /readyz and
	// /metrics (others get 503), and its connection is closed after the
	// answer. So probes still get in while the cap is reached.
	HealthReserve = 16
)

// AutoMaxConnections is the default -max-connections: half the process's
// file descriptor limit (the other half for Redis, the API and the
// console), within [MaxConnectionsFloor, MaxConnectionsCeiling].
func AutoMaxConnections() int {
	n := fileLimit()
	if n == 0 {
		return MaxConnectionsCeiling
	}
	return int(min(max(n/2, MaxConnectionsFloor), MaxConnectionsCeiling))
}

// capListener caps the connections open at once: up to max regular ones,
// then up to reserve more, marked as reserve connections (served for
// health checks only, see reserveOnly). When both are in use, Accept waits
// for a connection to close and new clients wait in the kernel's backlog.
type capListener struct {
	net.Listener
	regular, spare chan struct{} // one token per open connection
	open           atomic.Int64
	closed         chan struct{}
	closeOnce      sync.Once
}

// newCapListener caps ln at max connections plus reserve.
func newCapListener(ln net.Listener, max, reserve int) *capListener {
	return &capListener{Listener: ln, regular: make(chan struct{}, max), spare: make(chan struct{}, reserve),
		closed: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *capListener) Accept() (net.Conn, error) {
	slot, reserve := l.regular, false
	select {
	case l.regular <- struct{}{}:
	default:
		select {
		case l.regular <- struct{}{}:
		case l.spare <- struct{}{}:
			slot, reserve = l.spare, true
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-slot
		return nil, err
	}
	l.open.Add(1)
	return &cappedConn{Conn: c, release: func() { l.open.Add(-1); <-slot }, reserve: reserve}, nil
}

// Close closes the listener and wakes a waiting Accept.
func (l *capListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Open returns the number of connections open now.
func (l *capListener) Open() int { return int(l.open.Load()) }

// cappedConn gives its slot back when closed.
type cappedConn struct {
	net.Conn
	once    sync.Once
	release func()
	reserve bool
}

// Close closes the connection and frees its slot.
func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// reserveConnKey marks a request's context as arriving on a reserve connection.
type reserveConnKey struct{}

// connContext is the http.Server's ConnContext: it marks the requests of
// reserve connections.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*cappedConn); ok && cc.reserve {
		return context.WithValue(ctx, reserveConnKey{}, true)
	}
	return ctx
}

// reserveOnly serves a request that arrived on a reserve connection only
// if it is a health check or a metrics scrape, and closes that connection
// after the answer; anything else is answered 503 at once (the platform
// retries a callback). Requests on regular connections pass unchanged.
func reserveOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Context().Value(reserveConnKey{}) == nil {
			next.ServeHTTP(rw, r)
			return
		}
		rw.Header().Set("Connection", "close")
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				next.ServeHTTP(rw, r)
				return
			}
		}
		rw.Header().Set("Retry-After", "5")
		http.Error(rw, "too many connections", http.StatusServiceUnavailable)
	})
}
