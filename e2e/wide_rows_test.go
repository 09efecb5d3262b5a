package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

// Issue #17.4, kept cheap: a CSV whose wide rows (2,000 columns) encode to
// task bodies over -max-task-bytes among ordinary rows. The wide rows are
// rejected by line with their size, the others enqueued, and no asynq
// message in Redis is bigger than the limit plus the payload's envelope.
// (The full-size figure, 1,000,000 columns, is bench/widerows.sh's.)
func TestWideRows(t *testing.T) {
	suite(t)
	const cols, limit = 2000, 16 << 10
	dir, logDir := t.TempDir(), t.TempDir()
	rs := testredis.Start(t, testredis.Options{})
	path := filepath.Join(dir, "wide.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("attachment")
	for i := range cols {
		fmt.Fprintf(w, ",column_%d", i)
	}
	var wide []int64
	for r := range 40 {
		fmt.Fprintf(w, "\nhttps://files.example.com/%d.pdf", r)
		cell := ""
		if r%4 == 1 {
			cell = "wide-value"
			wide = append(wide, int64(r+2)) // line numbers: the header is line 1
		}
		w.WriteString(strings.Repeat(","+cell, cols))
	}
	w.WriteString("\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rejects := filepath.Join(dir, "wide.rejects.jsonl")
	r := runEnqueue(t, ctx, logDir, "-type", "documenttranscription", "-project", "demo", "-json", "-redis", rs.URL(),
		"-rejects", rejects, "-max-task-bytes", fmt.Sprint(limit), path)
	if r.code != 3 {
		t.Fatalf("exit %d, want 3\n%s", r.code, tailBytes(r.stderr, 2000))
	}
	var s summary
	r.lastJSON(t, &s)
	if s.Rows != 40 || s.Invalid != int64(len(wide)) || s.Enqueued != 40-int64(len(wide)) {
		t.Errorf("summary %s, want 40 rows, %d invalid", s, len(wide))
	}
	b, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(wide) {
		t.Fatalf("%d rejects, want %d", len(lines), len(wide))
	}
	for i, l := range lines {
		var rj struct {
			Line  int64  `json:"line"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &rj); err != nil || rj.Line != wide[i] || !strings.Contains(rj.Error, "-max-task-bytes") {
			t.Errorf("reject %d = %s (%v), want line %d naming -max-task-bytes", i, l, err, wide[i])
		}
	}
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, "asynq:{*}:t:*").Result()
	if err != nil || len(keys) != 40-len(wide) {
		t.Fatalf("asynq task keys: %d, %v", len(keys), err)
	}
	for _, k := range keys {
		if n, _ := rdb.HStrLen(ctx, k, "msg").Result(); n > limit+1024 {
			t.Errorf("asynq message %s is %d bytes, over the %d-byte limit", k, n, limit)
		}
	}
}
