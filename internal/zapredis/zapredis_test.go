package zapredis

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestPrintfLogsAWarning(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	Logger{L: zap.New(core)}.Printf(context.Background(), "failed to dial after %d attempts", 5)
	all := logs.All()
	if len(all) != 1 || all[0].Level != zapcore.WarnLevel || all[0].Message != "failed to dial after 5 attempts" {
		t.Fatalf("logged %+v, want one warning with the formatted message", all)
	}
}
