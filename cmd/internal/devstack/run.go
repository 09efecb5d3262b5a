package devstack

import (
	"context"
	"fmt"
	"io"

	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// ExampleEnqueueArgs returns the enqueue arguments of the quick-start
// example, shown by Run's banner (paths relative to the repository root).
func ExampleEnqueueArgs() []string {
	return []string{"-type", "imageannotation", "-project", "demo",
		"-params", "examples/street-scenes.params.json", "-wait", "examples/street-scenes.csv"}
}

// Run is `worker -dev`: it starts a stack, writes to out where each part
// listens and the enqueue command a second terminal can run against it,
// and serves until ctx ends (Ctrl-C) or a component fails; then it closes
// the stack. It returns nil after a shutdown caused by ctx.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	s, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	s.WriteBanner(out)
	select {
	case <-ctx.Done():
	case <-s.Done():
	}
	failed := s.Err()
	fmt.Fprintln(out, "dev stack: stopping")
	cerr := s.Close()
	if failed != nil {
		return failed
	}
	return cerr
}

// WriteBanner writes where each part of the stack listens and the enqueue
// command line a second terminal can run against it. The keys it shows are
// the sandbox's public quick-try defaults.
func (s *Stack) WriteBanner(out io.Writer) {
	w := "http://" + s.WorkerAddr().String()
	fmt.Fprintf(out, `refonte-batch dev stack: Redis, the Refonte API sandbox and a worker, all in this process (Ctrl-C stops it)

  Redis (in-process)   %s
  Sandbox API          %s   test mode, key %s
  Callback URL         %s   auth key %s
  Worker               %s/healthz  %s/readyz  %s/metrics
  Console              %s

Submit the example from a second terminal, at the repository root:

  %s

Or point a second worker at the same stack:

  %s go run ./cmd/worker -listen 127.0.0.1:0

`, s.RedisURL(), s.SandboxURL(), sandbox.DefaultTestKey, s.CallbackURL(), sandbox.DefaultCallbackAuthKey,
		w, w, w, s.consoleLine(), s.EnqueueCommand(ExampleEnqueueArgs()...), joinEnv(s.WorkerEnv()))
}

// consoleLine is the banner's Console value.
func (s *Stack) consoleLine() string {
	if u := s.ConsoleURL(); u != "" {
		return u + "   runs console (open it in a browser)"
	}
	return "none: its address is taken (-admin-listen)"
}

func joinEnv(env []string) string {
	out := ""
	for i, e := range env {
		if i > 0 {
			out += " "
		}
		out += shellQuoteEnv(e)
	}
	return out
}

// shellQuoteEnv quotes the value of a NAME=value pair for a POSIX shell.
func shellQuoteEnv(e string) string {
	for i := 0; i < len(e); i++ {
		if e[i] == '=' {
			return e[:i+1] + shellQuote(e[i+1:])
		}
	}
	return shellQuote(e)
}
