package enqueue

import (
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/redisurl"
)

// OpenRedis returns a client for a Redis URL: redis://, rediss:// (TLS),
// unix:// or redis-sentinel://[user:password@]host:port[,host:port...][/db]?master=NAME
// (parsed by package internal/redisurl, as the worker does). It does not
// connect; errors match ErrUsage and never contain the password.
func OpenRedis(rawURL string) (redis.UniversalClient, error) {
	u, err := redisurl.Parse(rawURL)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	return u.NewClient(redisurl.Tuning{}), nil
}
