// Package zapredis sends go-redis's own messages (dial failures, pool
// errors) to a zap logger, so a program's stderr stays structured instead of
// mixing plain log lines into its JSON logs.
package zapredis

import (
	"context"
	"fmt"

	"go.uber.org/zap"
)

// Logger adapts a *zap.Logger to go-redis's internal logging interface;
// install it in main with redis.SetLogger(zapredis.Logger{L: logger}).
// Every message is logged at warn level.
type Logger struct{ L *zap.Logger }

// Printf logs one go-redis message.
func (r Logger) Printf(_ context.Context, format string, v ...any) {
	r.L.Warn(fmt.Sprintf(format, v...))
}
