package enqueue

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// OpenRedis returns a client for a Redis URL: redis://, rediss:// (TLS) or
// redis-sentinel://[:password@]host:port[,host:port...][/db]?master=NAME.
// It does not connect; errors match ErrUsage and never contain the password.
func OpenRedis(rawURL string) (redis.UniversalClient, error) {
	if strings.HasPrefix(rawURL, "redis-sentinel://") {
		return openSentinel(rawURL)
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, usagef("Redis URL %s: %v", redactURL(rawURL), err)
	}
	return redis.NewClient(opts), nil
}

func openSentinel(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, usagef("Redis URL %s: cannot parse", redactURL(rawURL))
	}
	opts := &redis.FailoverOptions{MasterName: u.Query().Get("master")}
	if opts.MasterName == "" {
		return nil, usagef("Redis URL %s: a sentinel URL needs ?master=NAME", redactURL(rawURL))
	}
	opts.SentinelAddrs = strings.Split(u.Host, ",")
	if u.User != nil {
		opts.Password, _ = u.User.Password()
		if opts.Password == "" {
			opts.Password = u.User.Username()
		}
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if opts.DB, err = strconv.Atoi(p); err != nil {
			return nil, usagef("Redis URL %s: bad database number %q", redactURL(rawURL), p)
		}
	}
	return redis.NewFailoverClient(opts), nil
}

// redactURL hides the password of a URL for messages.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return fmt.Sprint(u.Redacted())
}
