// Package redisurl is the one parser of Redis URLs for every binary
// (enqueue, worker): redis://, rediss:// (TLS), unix:// and
// redis-sentinel://, each with every field honoured, and the place
// that redacts them for messages (with package redact).
//
// A sentinel URL names the sentinels, the master set and the database:
//
//	redis-sentinel://[user:password@]host1:26379[,host2:26379...][/db]?master=NAME
//
// The userinfo authenticates to the master and its replicas (what the
// data commands need) and, unless sentinel_password is given, to the
// sentinels too (the usual set-up, one password for all). Query options of
// a sentinel URL besides go-redis' own (dial_timeout, read_timeout,
// pool_size, protocol, skip_verify…):
//
//	master=NAME            the master set (required; master_name is accepted too)
//	sentinel_username=U    the sentinels' ACL user (default: the URL's user)
//	sentinel_password=P    the sentinels' password (default: the URL's password;
//	                       sentinel_password= with no value: sentinels without AUTH)
//	tls=true               TLS to the sentinels and the master (rediss-style)
//
// Any URL may also say how many replicas must hold a write before the
// program acknowledges it (see Durability): wait_replicas=N (default 1 for
// a sentinel URL, 0 otherwise) and wait_timeout=D (default 1s).
//
// Redis URLs never appear in a message in full: Redact (package redact,
// the one place that redacts URLs) hides the password (and a lone user
// name, which may be a password written without its colon), and every
// error of Parse names the redacted URL only.
package redisurl

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/redact"
)

// ErrInvalid is matched (errors.Is) by every error of Parse.
var ErrInvalid = errors.New("invalid Redis URL")

// Error is a Redis URL that cannot be used. Its message names the URL with
// its secrets redacted, and says why.
type Error struct {
	// URL is the redacted URL.
	URL string
	// Reason says what is wrong, without any secret.
	Reason string
}

// Error returns "Redis URL <redacted>: <reason>".
func (e *Error) Error() string { return "Redis URL " + e.URL + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// SentinelScheme is the scheme of sentinel URLs.
const SentinelScheme = "redis-sentinel"

// DefaultSentinelPort is the port of a sentinel host given without one.
const DefaultSentinelPort = "26379"

// URL is a parsed Redis URL. Its String method gives the redacted form.
type URL struct {
	single     *redis.Options
	failover   *redis.FailoverOptions
	durability Durability
	redacted   string
}

// Tuning overrides what a program sizes for itself rather than reading from
// the URL; zero fields keep the URL's value (or go-redis' default).
type Tuning struct {
	// PoolSize is the connection pool size.
	PoolSize int
	// Protocol is the RESP version (2 or 3).
	Protocol int
	// OnMasterSwitch, for a sentinel URL, is called once when a sentinel
	// first announces a new master, before the client sends anything to
	// it (the client follows it as soon as the call returns: it must not
	// block).
	OnMasterSwitch func(old, new string)
}

// ourParams are the sentinel query options that go-redis' ParseURL does
// not know; Parse takes them out before handing the rest to it.
var ourParams = []string{"master", "master_name", "sentinel_username", "sentinel_password", "tls"}

// Parse parses a Redis URL. Errors match ErrInvalid and never contain a
// password.
func Parse(raw string) (*URL, error) {
	red := Redact(raw)
	bad := func(format string, args ...any) error {
		return &Error{URL: red, Reason: scrub(fmt.Sprintf(format, args...), raw)}
	}
	u, hosts, err := parseRaw(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error repeats the whole URL
		}
		return nil, bad("%v", err)
	}
	out := &URL{redacted: red}
	if out.durability, err = parseDurability(u.Query(), u.Scheme == SentinelScheme); err != nil {
		return nil, bad("%v", err)
	}
	q := u.Query()
	q.Del("wait_replicas")
	q.Del("wait_timeout")
	u.RawQuery = q.Encode()
	switch u.Scheme {
	case "redis", "rediss", "unix":
		for _, p := range ourParams {
			if u.Query().Has(p) {
				return nil, bad("option %s is for %s:// URLs only", p, SentinelScheme)
			}
		}
		if u.Scheme != "unix" && u.Host == "" {
			return nil, bad("no host")
		}
		opts, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, bad("%v", trimRedisPrefix(err))
		}
		out.single = opts
	case SentinelScheme:
		if out.failover, err = parseSentinel(u, hosts); err != nil {
			return nil, bad("%v", err)
		}
	default:
		return nil, bad("unsupported scheme %q (want redis://, rediss://, unix:// or %s://)", u.Scheme, SentinelScheme)
	}
	return out, nil
}

// parseSentinel reads a redis-sentinel:// URL: go-redis' own parser reads
// everything a plain URL has (user, password, database, timeouts, pool,
// TLS), and this function adds the sentinels and their credentials.
func parseSentinel(u *url.URL, hosts string) (*redis.FailoverOptions, error) {
	q := u.Query()
	master := q.Get("master")
	if master == "" {
		master = q.Get("master_name")
	}
	if master == "" {
		return nil, errors.New("a sentinel URL needs ?master=NAME (the sentinels' master set)")
	}
	if hosts == "" {
		return nil, errors.New("no sentinel host")
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			return nil, errors.New("empty sentinel host in the host list")
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = h, DefaultSentinelPort
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" {
			return nil, fmt.Errorf("bad sentinel address %q", h)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	useTLS := false
	if v := q.Get("tls"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("tls=%q: want true or false", v)
		}
		useTLS = b
	}
	rest := url.Values{}
	for k, v := range q {
		rest[k] = v
	}
	for _, p := range ourParams {
		rest.Del(p)
	}
	plain := url.URL{Scheme: "redis", User: u.User, Host: addrs[0], Path: u.Path, RawQuery: rest.Encode()}
	if useTLS {
		plain.Scheme = "rediss"
	}
	o, err := redis.ParseURL(plain.String())
	if err != nil {
		return nil, trimRedisPrefix(err)
	}
	f := &redis.FailoverOptions{
		MasterName:       master,
		SentinelAddrs:    addrs,
		SentinelUsername: o.Username,
		SentinelPassword: o.Password,
		Username:         o.Username,
		Password:         o.Password,
		DB:               o.DB,
		Protocol:         o.Protocol,
		ClientName:       o.ClientName,
		MaxRetries:       o.MaxRetries,
		MinRetryBackoff:  o.MinRetryBackoff,
		MaxRetryBackoff:  o.MaxRetryBackoff,
		DialTimeout:      o.DialTimeout,
		ReadTimeout:      o.ReadTimeout,
		WriteTimeout:     o.WriteTimeout,
		PoolFIFO:         o.PoolFIFO,
		PoolSize:         o.PoolSize,
		PoolTimeout:      o.PoolTimeout,
		MinIdleConns:     o.MinIdleConns,
		MaxIdleConns:     o.MaxIdleConns,
		MaxActiveConns:   o.MaxActiveConns,
		ConnMaxIdleTime:  o.ConnMaxIdleTime,
		ConnMaxLifetime:  o.ConnMaxLifetime,
	}
	if o.TLSConfig != nil {
		// Each sentinel and the master have their own names: let the TLS
		// dial take the server name from the address it dials.
		f.TLSConfig = o.TLSConfig.Clone()
		f.TLSConfig.ServerName = ""
		f.TLSConfig.MinVersion = tls.VersionTLS12
	}
	if q.Has("sentinel_username") {
		f.SentinelUsername = q.Get("sentinel_username")
	}
	if q.Has("sentinel_password") {
		f.SentinelPassword = q.Get("sentinel_password")
	}
	return f, nil
}

// parseRaw parses raw with url.Parse; for a sentinel URL, whose host list
// url.Parse rejects when a host has no port, it parses the URL with one
// placeholder host and returns the list apart.
func parseRaw(raw string) (*url.URL, string, error) {
	prefix := SentinelScheme + "://"
	if !strings.HasPrefix(strings.ToLower(raw), prefix) {
		u, err := url.Parse(raw)
		return u, "", err
	}
	rest := raw[len(prefix):]
	end := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		end = i
	}
	auth, tail := rest[:end], rest[end:]
	user := ""
	if i := strings.LastIndex(auth, "@"); i >= 0 {
		user, auth = auth[:i+1], auth[i+1:]
	}
	u, err := url.Parse(prefix + user + "sentinels" + tail)
	if err != nil {
		return nil, "", err
	}
	u.Host = ""
	return u, auth, nil
}

// trimRedisPrefix drops go-redis' "redis: " prefix of a parse error.
func trimRedisPrefix(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "redis: "))
}

// String returns the URL with its secrets redacted.
func (u *URL) String() string { return u.redacted }

// Sentinel reports whether the URL is a redis-sentinel:// one.
func (u *URL) Sentinel() bool { return u.failover != nil }

// DB returns the database number.
func (u *URL) DB() int {
	if u.failover != nil {
		return u.failover.DB
	}
	return u.single.DB
}

// Options returns a copy of the go-redis options of a plain URL (nil for a
// sentinel URL).
func (u *URL) Options() *redis.Options {
	if u.single == nil {
		return nil
	}
	o := *u.single
	return &o
}

// FailoverOptions returns a copy of the go-redis options of a sentinel URL
// (nil for a plain URL).
func (u *URL) FailoverOptions() *redis.FailoverOptions {
	if u.failover == nil {
		return nil
	}
	o := *u.failover
	o.SentinelAddrs = append([]string(nil), u.failover.SentinelAddrs...)
	return &o
}

// NewClient returns a go-redis client for the URL, with t's overrides. It
// does not connect.
func (u *URL) NewClient(t Tuning) redis.UniversalClient {
	if f := u.FailoverOptions(); f != nil {
		if t.PoolSize > 0 {
			f.PoolSize = t.PoolSize
		}
		if t.Protocol > 0 {
			f.Protocol = t.Protocol
		}
		fw := followSentinels(f, t.OnMasterSwitch)
		return &followingClient{Client: redis.NewFailoverClient(f), fw: fw}
	}
	o := u.Options()
	if t.PoolSize > 0 {
		o.PoolSize = t.PoolSize
	}
	if t.Protocol > 0 {
		o.Protocol = t.Protocol
	}
	return redis.NewClient(o)
}

// AsynqOpt returns the URL as an asynq connection option: asynq's clients
// built from it connect exactly as NewClient's do (asynq.ParseRedisURI
// drops a sentinel URL's database and gives its password to the sentinels
// only).
func (u *URL) AsynqOpt(t Tuning) asynq.RedisConnOpt { return connOpt{u: u, t: t} }

type connOpt struct {
	u *URL
	t Tuning
}

// MakeRedisClient implements asynq.RedisConnOpt.
func (c connOpt) MakeRedisClient() any { return c.u.NewClient(c.t) }

// Redact returns a URL fit for a message: the password of its userinfo (or
// a lone user name, which may be a password) and the value of any query
// option named like a secret are replaced by "xxxxx" (see package redact).
// It works on strings url.Parse rejects too.
func Redact(raw string) string { return redact.URL(raw) }

// scrub removes the URL's secrets from a message made by a library, in
// case the library quoted them.
func scrub(msg, raw string) string { return redact.Scrub(msg, raw) }
