package enqueue

import (
	"errors"
	"strings"
	"testing"
)

// TestStoppedErrorSaysWhatIsKnown: after a crash the abort message gives
// the rows Redis still holds as read back after the stop, not the rows
// whose writes were confirmed before it (Redis may have lost some of
// those), and says the number is unknown when Redis could not be read.
func TestStoppedErrorSaysWhatIsKnown(t *testing.T) {
	cause := errors.New("redis: connection refused")
	for _, c := range []struct {
		name    string
		err     StoppedError
		want    []string
		notWant []string
	}{
		{"survivors read back", StoppedError{RunID: "r1", Line: 11800, RowsRead: 11799, Enqueued: 11776, Recorded: 2816, RecordedKnown: true, Err: cause},
			[]string{"stopped at line 11800 after reading 11799 rows and enqueuing 11776 rows", "run r1 aborted: Redis holds 2816 of its rows (read after the stop)"},
			[]string{"11776 enqueued rows stay queued", "its 11776"}},
		{"Redis unreadable after the stop", StoppedError{RunID: "r1", Line: 9, RowsRead: 8, Enqueued: 8, Err: cause},
			[]string{"how many of the 8 rows confirmed before it survived is unknown"},
			[]string{"Redis holds", "stay queued"}},
		{"no run created", StoppedError{RowsRead: 0, Err: cause},
			[]string{"stopped after reading 0 rows and enqueuing 0 rows: redis: connection refused"},
			[]string{"run "}},
	} {
		msg := c.err.Error()
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q lacks %q", c.name, msg, w)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(msg, w) {
				t.Errorf("%s: %q says %q", c.name, msg, w)
			}
		}
	}
}
