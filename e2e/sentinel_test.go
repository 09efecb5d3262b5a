package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

// Scenario: Redis behind Sentinel (a master and 2 replicas with AOF, 3
// sentinels with quorum 2, a password, database 3); two workers; 3,000
// rows; 5 s into the run the master is switched (SENTINEL FAILOVER) or
// SIGKILLed. The run must finish by itself within 4 minutes at the
// default -callback-grace, every row created exactly once, the status
// agreeing with the API, and no password in any log.
func TestSentinelFailover(t *testing.T)     { sentinelScenario(t, false) }
func TestSentinelMasterKilled(t *testing.T) { sentinelScenario(t, true) }

func sentinelScenario(t *testing.T, kill bool) {
	suite(t)
	const pw = "e2e-sentinel-Passw0rd"
	rows := envRows(t, 3000, 3000)
	tp := testredis.StartTopology(t, testredis.TopologyOptions{Replicas: 2, Sentinels: 3, Quorum: 2,
		Password: pw, AOF: true, DownAfter: time.Second})
	tp.WaitSettled()
	c := startCluster(t, clusterOpts{
		workers:     2,
		redisURL:    tp.URL(3),
		sandboxArgs: []string{"-complete-after", "200ms"},
		workerArgs:  []string{"-rate-limit", rate(rows, 30), "-rate-burst", "20"},
	})
	ds := writeDataset(t, c.dir, "sentinel", rows, 0)
	start := time.Now()
	first := c.submit(ds)
	time.Sleep(time.Until(start.Add(5 * time.Second)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old, err := tp.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := c.status(first.RunID)
	if kill {
		t.Logf("SIGKILL the master %s at %s", old, before)
		tp.Server(old).Kill()
	} else {
		t.Logf("SENTINEL FAILOVER (master %s) at %s", old, before)
		if err := tp.Failover(ctx); err != nil {
			t.Fatal(err)
		}
	}
	switched := time.Now()
	now, err := tp.WaitMasterChange(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sentinels name %s the master after %s", now, time.Since(switched).Round(time.Millisecond))

	s := c.waitDone(first.RunID, 4*time.Minute-time.Since(start), nil)
	t.Logf("run done %s after the start, %s after the switch: %s", time.Since(start).Round(time.Second),
		time.Since(switched).Round(time.Second), s)
	c.checkAccount(ds, first.RunID)
	st := c.stats()
	t.Logf("sandbox: %d created, %d twice, %d 409s", st.TasksCreated, st.UniqueIDsCreatedTwice, st.DuplicateUniqueID)
	scanFiles(t, c.logDir, []string{pw})
}
