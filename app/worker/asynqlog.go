package worker

import (
	"strings"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// asynqLogger is the logger the worker gives asynq: the worker's own, at
// the same levels, but for one harmless warning. Every asynq server runs
// a recoverer that, once a minute, moves the tasks whose lease expired
// (their worker died, or their acknowledgement was lost with a Redis
// master in a failover) back to the retry queue. A worker runs up to 16
// asynq servers and the fleet several workers, so each such task is found
// by many recoverers at once: one moves it, and asynq's script answers
// NOT FOUND to every other, which asynq logs as a warning — after a lossy
// failover, thousands of lines (76 lost acknowledgements × 30 recoverers
// in the e2e Sentinel scenario) saying only that someone else did the
// job. Those lines go to debug level and are counted
// (refonte_asynq_recovery_races_total). And while the worker's Redis gate
// holds commands back (Redis unreachable or refusing the password: the
// gate logs one line per probe), asynq's warnings and errors, a dozen per
// server and probe saying the same, are debug lines too. Every other
// message, the recoverer's other failures included, is logged as asynq
// gives it.
type asynqLogger struct {
	*zap.SugaredLogger
	races prometheus.Counter
	// redisDown reports whether the worker's Redis gate is closed (nil: never).
	redisDown func() bool
}

var _ asynq.Logger = asynqLogger{}

// Warn logs a warning of asynq's (see quiet).
func (l asynqLogger) Warn(args ...any) {
	if !l.quiet(args) {
		l.SugaredLogger.Warn(args...)
	}
}

// Error logs an error of asynq's (see quiet).
func (l asynqLogger) Error(args ...any) {
	if !l.quiet(args) {
		l.SugaredLogger.Error(args...)
	}
}

// quiet logs at debug level, and reports true for, asynq's NOT FOUND of a
// lost write (lostRecoveryRace, lostAcknowledgement: counted too) and any
// line of a Redis outage the gate already reports.
func (l asynqLogger) quiet(args []any) bool {
	if len(args) == 1 {
		if msg, ok := args[0].(string); ok && (lostRecoveryRace(msg) || lostAcknowledgement(msg)) {
			l.races.Inc()
			l.SugaredLogger.Debug(msg)
			return true
		}
	}
	if l.outage() {
		l.SugaredLogger.Debug(args...)
		return true
	}
	return false
}

// outage reports whether the worker's Redis gate holds commands back.
func (l asynqLogger) outage() bool { return l.redisDown != nil && l.redisDown() }

// The recoverer's messages of asynq v0.26 (recoverer.go) when moving a
// lease-expired task fails, and the reply of its retry and archive Lua
// scripts (internal/rdb) when the task is no longer in the active list.
// asynq hands its logger only the formatted text: the whole line must be
// one of these prefixes, then asynq's error (code, "redis eval error"),
// ending with the script's reply. TestAsynqRecoveryRaceIsDebug checks
// them against the real asynq.
const (
	recovererRetryFailed   = "recoverer: could not retry lease expired task: "
	recovererArchiveFailed = "recoverer: could not move task to archive: "
	asynqScriptNotFound    = ": redis eval error: NOT FOUND"
)

// lostRecoveryRace reports whether msg is asynq's recoverer failing to
// move a lease-expired task because another server already moved it.
func lostRecoveryRace(msg string) bool {
	rest, ok := strings.CutPrefix(msg, recovererRetryFailed)
	if !ok {
		rest, ok = strings.CutPrefix(msg, recovererArchiveFailed)
	}
	return ok && strings.HasSuffix(rest, asynqScriptNotFound) && strings.Count(rest, ":") == 2
}

// The processor's message of asynq v0.26 (processor.go markAsDone, and its
// syncer's last try at shutdown) when a finished task is no longer in its
// queue's active list: a Redis failover lost the write that moved it there,
// so the task is pending again, runs again and resolves by 409 (the same
// loss as the recoverer's race, logged and counted alike).
const (
	processorDoneFailed = "Could not remove task id="
	asynqRetrySyncing   = "; Will retry syncing"
)

// lostAcknowledgement reports whether msg is asynq's processor failing to
// acknowledge a task that a failover took out of the active list.
func lostAcknowledgement(msg string) bool {
	rest, ok := strings.CutPrefix(msg, processorDoneFailed)
	if !ok {
		return false
	}
	rest = strings.TrimSuffix(rest, asynqRetrySyncing)
	return strings.HasSuffix(rest, asynqScriptNotFound) && strings.Contains(rest, `:active" err: `)
}
