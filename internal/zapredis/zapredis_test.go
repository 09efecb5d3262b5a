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

func TestSentinelNewsIsDebug(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := Logger{L: zap.New(core)}
	l.Printf(context.Background(), "sentinel: selected addr=%s masterAddr=%s", "a:1", "b:2")
	l.Printf(context.Background(), "sentinel: new master=%q addr=%q", "m", "b:2")
	l.Printf(context.Background(), "sentinel: GetMasterAddrByName name=%q failed: %s", "m", "x")
	all := logs.All()
	if len(all) != 3 || all[0].Level != zapcore.DebugLevel || all[1].Level != zapcore.DebugLevel || all[2].Level != zapcore.WarnLevel {
		t.Fatalf("logged %+v; want two debug lines and one warning", all)
	}
}
