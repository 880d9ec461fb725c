"""Runtimes: where workloads run (local processes; OCI and Kubernetes come later)."""
