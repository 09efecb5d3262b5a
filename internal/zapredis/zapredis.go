// Package zapredis sends go-redis's own messages (dial failures, pool
// errors) to a zap logger, so a program's stderr stays structured instead of
// mixing plain log lines into its JSON logs.
package zapredis

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// Logger adapts a *zap.Logger to go-redis's internal logging interface;
// install it in main with redis.SetLogger(zapredis.Logger{L: logger}).
// Messages are logged at warn level, except the sentinel client's news
// (which sentinel answered, the master it named, sentinels discovered),
// logged at debug level: a command-line call prints them every time, and
// the worker logs a master switch itself.
type Logger struct{ L *zap.Logger }

// Printf logs one go-redis message.
func (r Logger) Printf(_ context.Context, format string, v ...any) {
	if sentinelNews(format) {
		r.L.Debug(fmt.Sprintf(format, v...))
		return
	}
	r.L.Warn(fmt.Sprintf(format, v...))
}

// sentinelNews reports whether a go-redis log format is one of the sentinel
// client's routine notices (go-redis v9's sentinel.go).
func sentinelNews(format string) bool {
	for _, p := range []string{"sentinel: selected ", "sentinel: new master", "sentinel: discovered new sentinel"} {
		if strings.HasPrefix(format, p) {
			return true
		}
	}
	return false
}
