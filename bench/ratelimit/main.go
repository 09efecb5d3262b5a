// Command ratelimit benchmarks the shared Redis limiter as a fleet of worker
// pods uses it: the parent re-executes itself as -procs child OS processes,
// each running -goroutines goroutines that call Wait in a loop against ONE
// limit for -duration. Children record, for every grant, the actual wake-up
// time and the booked slot (on the Redis server's clock: run Redis on the same
// machine so both clocks are one) and count the commands their client sends;
// they report JSON on stdout and the parent merges and prints:
//
//   - achieved rate as a fraction of the limit (grants / (rate × duration));
//   - the most grants in any 1-second sliding window, against rate + burst;
//   - Redis calls per grant;
//   - p50/p99/max lateness of wake-ups (actual wake − booked slot).
//
// Usage:
//
//	go run ./bench/ratelimit -redis redis://127.0.0.1:6379/0 -rate 500 -burst 10 -procs 3 -goroutines 50 -duration 20s
//
// Exit status: 0 when every target is met, 1 when one is missed, 2 on a
// usage or run error. bench/ratelimit.sh starts a throwaway redis-server.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

type options struct {
	redisURL   string
	rate       float64
	burst      int
	procs      int
	goroutines int
	duration   time.Duration
	name       string
	jsonOut    bool
	child      bool
	start      int64
}

func main() {
	var o options
	flag.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379/0", "Redis URL (on this machine: slots are compared with local wake-up times)")
	flag.Float64Var(&o.rate, "rate", 500, "limit in grants per second")
	flag.IntVar(&o.burst, "burst", 10, "burst")
	flag.IntVar(&o.procs, "procs", 3, "child OS processes")
	flag.IntVar(&o.goroutines, "goroutines", 50, "goroutines per process calling Wait in a loop")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured run time")
	flag.StringVar(&o.name, "name", "", "limit name (default: a fresh bench:<time> name)")
	flag.BoolVar(&o.jsonOut, "json", false, "print the summary as JSON")
	flag.BoolVar(&o.child, "child", false, "internal: run as a child process")
	flag.Int64Var(&o.start, "start", 0, "internal: start time of the measured run, unix nanoseconds")
	flag.Parse()
	if o.child {
		if err := runChild(o); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		return
	}
	sum, err := runParent(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratelimit bench:", err)
		os.Exit(2)
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(sum)
	} else {
		sum.print(os.Stdout)
	}
	if !sum.Pass {
		os.Exit(1)
	}
}

// runParent starts the children, waits for their reports and merges them.
func runParent(o options) (summary, error) {
	if o.rate <= 0 || o.procs < 1 || o.goroutines < 1 || o.duration <= 0 {
		return summary{}, fmt.Errorf("need -rate > 0, -procs >= 1, -goroutines >= 1, -duration > 0")
	}
	if o.burst < 1 {
		o.burst = 1
	}
	if o.name == "" {
		o.name = "bench:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	self, err := os.Executable()
	if err != nil {
		return summary{}, err
	}
	start := time.Now().Add(time.Second + time.Duration(o.procs)*200*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Until(start)+o.duration+time.Minute)
	defer cancel()
	reports := make([]report, o.procs)
	errs := make([]error, o.procs)
	var wg sync.WaitGroup
	for i := 0; i < o.procs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, self, "-child",
				"-redis", o.redisURL, "-rate", fmt.Sprint(o.rate), "-burst", strconv.Itoa(o.burst),
				"-goroutines", strconv.Itoa(o.goroutines), "-duration", o.duration.String(),
				"-name", o.name, "-start", strconv.FormatInt(start.UnixNano(), 10))
			cmd.Stdout, cmd.Stderr = &out, os.Stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("child %d: %w", i, err)
				return
			}
			errs[i] = json.Unmarshal(out.Bytes(), &reports[i])
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return summary{}, err
		}
	}
	return summarize(o, reports), nil
}
