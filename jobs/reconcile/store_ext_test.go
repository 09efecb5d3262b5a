package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// TestStoreExtensions covers the store methods added for the reconciler
// (jobs/store/reconcile_ext.go).
func TestStoreExtensions(t *testing.T) {
	e := newEnv(t, sandbox.Config{NoAutoComplete: true})
	ctx := context.Background()
	_, uids := e.submitted(t, "ext", 2)
	future := time.Now().Add(time.Hour)

	t.Run("DeferInFlight moves an in-flight job", func(t *testing.T) {
		ok, err := e.st.DeferInFlight(ctx, refonte.ModeTest, uids[0], future)
		if err != nil || !ok {
			t.Fatalf("DeferInFlight = %v, %v; want true", ok, err)
		}
		ok, err = e.st.DeferInFlight(ctx, refonte.ModeTest, uids[0], future) // same score
		if err != nil || !ok {
			t.Fatalf("DeferInFlight again = %v, %v; want true", ok, err)
		}
		ids, err := e.st.InFlightBefore(ctx, refonte.ModeTest, future.Add(-time.Minute), 10)
		if err != nil || len(ids) != 1 || ids[0] != uids[1] {
			t.Fatalf("in flight before the deferral: %v, %v; want [%s]", ids, err, uids[1])
		}
	})

	t.Run("DeferInFlight never re-adds a completed job", func(t *testing.T) {
		j, err := e.st.GetJob(ctx, refonte.ModeTest, uids[1])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.Complete(ctx, refonte.ModeTest, uids[1], store.Outcome{TaskID: j.TaskID, Status: refonte.StatusCompleted}); err != nil {
			t.Fatal(err)
		}
		ok, err := e.st.DeferInFlight(ctx, refonte.ModeTest, uids[1], future)
		if err != nil || ok {
			t.Fatalf("DeferInFlight of a completed job = %v, %v; want false", ok, err)
		}
		ids, err := e.st.InFlightBefore(ctx, refonte.ModeTest, future.Add(time.Hour), 10)
		if err != nil || len(ids) != 1 || ids[0] != uids[0] {
			t.Fatalf("in flight: %v, %v; want [%s]", ids, err, uids[0])
		}
	})

	t.Run("DropInFlight", func(t *testing.T) {
		if err := e.st.DropInFlight(ctx, refonte.ModeTest, uids[0]); err != nil {
			t.Fatal(err)
		}
		ids, err := e.st.InFlightBefore(ctx, refonte.ModeTest, future.Add(time.Hour), 10)
		if err != nil || len(ids) != 0 {
			t.Fatalf("in flight after drop: %v, %v", ids, err)
		}
	})

	t.Run("leases are exclusive and released by their holder only", func(t *testing.T) {
		tok, ok, err := e.st.TryLease(ctx, "x", time.Minute)
		if err != nil || !ok || tok == "" {
			t.Fatalf("TryLease = %q, %v, %v", tok, ok, err)
		}
		if _, ok, err := e.st.TryLease(ctx, "x", time.Minute); err != nil || ok {
			t.Fatalf("second TryLease = %v, %v; want refused", ok, err)
		}
		if err := e.st.ReleaseLease(ctx, "x", "not-the-token"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := e.st.TryLease(ctx, "x", time.Minute); ok {
			t.Fatal("a wrong token released the lease")
		}
		if err := e.st.ReleaseLease(ctx, "x", tok); err != nil {
			t.Fatal(err)
		}
		tok2, ok, err := e.st.TryLease(ctx, "x", 50*time.Millisecond)
		if err != nil || !ok || tok2 == tok {
			t.Fatalf("TryLease after release = %q, %v, %v", tok2, ok, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, ok, _ := e.st.TryLease(ctx, "x", time.Minute); ok {
				break // expired on its own
			}
			if time.Now().After(deadline) {
				t.Fatal("lease did not expire")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("a lease is renewed by its holder only", func(t *testing.T) {
		tok, ok, err := e.st.TryLease(ctx, "renew", 200*time.Millisecond)
		if err != nil || !ok {
			t.Fatalf("TryLease = %v, %v", ok, err)
		}
		if ok, err := e.st.RenewLease(ctx, "renew", "not-the-token", time.Minute); err != nil || ok {
			t.Fatalf("RenewLease with a wrong token = %v, %v; want false", ok, err)
		}
		if ok, err := e.st.RenewLease(ctx, "renew", tok, time.Minute); err != nil || !ok {
			t.Fatalf("RenewLease = %v, %v; want true", ok, err)
		}
		time.Sleep(400 * time.Millisecond) // past the first TTL
		if _, ok, _ := e.st.TryLease(ctx, "renew", time.Minute); ok {
			t.Fatal("the renewed lease expired at its first TTL")
		}
		if err := e.st.ReleaseLease(ctx, "renew", tok); err != nil {
			t.Fatal(err)
		}
		if ok, err := e.st.RenewLease(ctx, "renew", tok, time.Minute); err != nil || ok {
			t.Fatalf("RenewLease of a released lease = %v, %v; want false", ok, err)
		}
	})
}
