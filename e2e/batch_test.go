package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// api calls the sandbox's API with the cluster's test key.
func (c *cluster) api(method, path string, body any, out any) int {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.sandboxURL+"/v1"+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth(c.keys.test, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// A run into a Refonte batch whose tasks the API holds until the batch is
// finalized (sandbox -hold-until-finalize): the workers must finalize it
// once every row is submitted, and never before, with a worker restarted
// meanwhile, for the run to complete.
func TestBatchFinalizedWhenAllSubmitted(t *testing.T) {
	suite(t)
	rows := envRows(t, 2000, 800)
	c := startCluster(t, clusterOpts{
		workers:     2,
		sandboxArgs: []string{"-complete-after", "100ms", "-hold-until-finalize"},
		workerArgs:  []string{"-rate-limit", rate(rows, 6), "-rate-burst", "20", "-callback-grace", "5s"},
	})
	const batch = "e2e-night-batch"
	if code := c.api(http.MethodPost, "/batches", map[string]any{"project": "demo", "name": batch}, nil); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("create batch: %d", code)
	}
	ds := writeDataset(t, c.dir, "batch", rows, 0)
	s := c.submit(ds, "-batch", batch)

	killed := false
	c.waitDone(s.RunID, 4*time.Minute, func(st summary) {
		var b struct {
			Status string `json:"status"`
		}
		c.api(http.MethodGet, "/batches/"+batch, nil, &b)
		if b.Status != "staging" && st.Submitted < st.Valid {
			// st was read before the batch: the last rows may have been
			// submitted (and the batch finalized) in between. The count
			// only grows, so a read after the batch's is the judge.
			if now := c.status(s.RunID); now.Submitted < now.Valid {
				t.Fatalf("batch %s is %s with only %d of %d rows submitted: finalized too early", batch, b.Status, now.Submitted, now.Valid)
			}
		}
		if !killed && st.Submitted >= st.Valid/2 {
			killed = true
			t.Logf("SIGTERM %s at %s", c.workers[1].name, st)
			if code := c.workers[1].stop(20 * time.Second); code != 0 {
				t.Errorf("%s after SIGTERM: exit %d, want 0", c.workers[1].name, code)
			}
			c.restartWorker(c.workers[1])
		}
	})
	var bs struct {
		Status    string `json:"status"`
		Completed int64  `json:"completed"`
		Pending   int64  `json:"pending"`
	}
	c.api(http.MethodGet, "/batches/"+batch+"/status", nil, &bs)
	t.Logf("batch status: %+v", bs)
	if bs.Completed != int64(ds.valid) || bs.Pending != 0 {
		t.Errorf("batch status %+v, want %d completed and none pending", bs, ds.valid)
	}
	c.checkAccount(ds, s.RunID)
}
