package jobs_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func TestParsePriority(t *testing.T) {
	for _, c := range []struct {
		in   string
		want jobs.Priority
		err  bool
	}{
		{"high", jobs.PriorityHigh, false},
		{"normal", jobs.PriorityNormal, false},
		{"low", jobs.PriorityLow, false},
		{"", jobs.PriorityNormal, false},
		{"HIGH", "", true},
		{"urgent", "", true},
	} {
		got, err := jobs.ParsePriority(c.in)
		if c.err != (err != nil) || got != c.want {
			t.Errorf("ParsePriority(%q) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.err)
		}
		if err != nil && !errors.Is(err, jobs.ErrBadPriority) {
			t.Errorf("ParsePriority(%q): error %v is not ErrBadPriority", c.in, err)
		}
	}
	if got := jobs.PriorityOf("bogus"); got != jobs.PriorityNormal {
		t.Errorf("PriorityOf(bogus) = %q, want normal", got)
	}
}

func TestPriorityQueues(t *testing.T) {
	for _, c := range []struct {
		mode refonte.Mode
		want string
	}{
		{refonte.ModeTest, "[refonte-test-high refonte-test refonte-test-low]"},
		{refonte.ModeLive, "[refonte-live-high refonte-live refonte-live-low]"},
	} {
		if got := fmt.Sprint(jobs.Queues(c.mode)); got != c.want {
			t.Errorf("Queues(%s) = %s, want %s", c.mode, got, c.want)
		}
		// Normal is the queue every job used before priorities.
		if got := jobs.PriorityQueue(c.mode, jobs.PriorityNormal); got != jobs.Queue(c.mode) {
			t.Errorf("normal queue %s, want %s", got, jobs.Queue(c.mode))
		}
	}
}
