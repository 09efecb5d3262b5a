// Command enqueue is the helper of bench/enqueue.sh, the producer's
// system-level benchmark:
//
//	go run ./bench/enqueue gen -rows 1000000 -out data.jsonl
//	go run ./bench/enqueue loop -redis redis://127.0.0.1:6379/0 -rows 200000 data.jsonl
//
// gen writes the synthetic imageannotation JSONL dataset
// (dataset.WriteSyntheticJSONL). loop is the baseline: it reads and
// validates rows like cmd/enqueue and enqueues each with a plain
// single-goroutine asynq.Client.Enqueue loop (no job records), then prints
// one JSON object {"rows", "seconds", "rows_per_s"}.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench/enqueue:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: enqueue gen|loop [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	rows := fs.Int("rows", 1_000_000, "rows to generate (gen) or enqueue at most (loop)")
	out := fs.String("out", "synthetic.jsonl", "output file (gen)")
	seed := fs.Int64("seed", 1, "generator seed (gen)")
	url := fs.String("redis", "redis://127.0.0.1:6379/0", "Redis URL (loop)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "gen":
		return gen(*out, *rows, *seed)
	case "loop":
		if fs.NArg() != 1 {
			return errors.New("usage: enqueue loop [-redis URL] [-rows N] DATASET.jsonl")
		}
		return loop(*url, fs.Arg(0), *rows)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func gen(path string, rows int, seed int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := dataset.WriteSyntheticJSONL(bw, rows, seed); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func loop(url, path string, limit int) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	in, err := dataset.OpenFile(path)
	if err != nil {
		return err
	}
	defer in.Close()
	r, err := dataset.NewReader(in, path, dataset.Options{Format: dataset.FormatJSONL,
		TaskType: refonte.TypeImageAnnotation, Project: "bench"})
	if err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()
	n := 0
	for n < limit {
		row, rej, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if rej != nil {
			continue
		}
		task, err := jobs.NewSubmitTask(jobs.SubmitPayload{Run: "loop", Line: row.Line, UniqueID: row.UniqueID,
			TaskType: row.Type, Mode: refonte.ModeTest, Params: row.Body})
		if err != nil {
			return err
		}
		if _, err := client.EnqueueContext(ctx, task); err != nil {
			return err
		}
		n++
	}
	secs := time.Since(start).Seconds()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"rows": n, "seconds": secs, "rows_per_s": float64(n) / secs})
}
