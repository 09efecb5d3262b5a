// Package deploy holds refonte-batch's deployment files (Dockerfile,
// docker-compose, Kubernetes manifests) and the test that checks their
// invariants: probes, graceful shutdown, no inline secrets, pinned images,
// AOF persistence and non-overlapping CronJobs.
package deploy
