"""The Kubernetes API names both sides use, and the metric the operator scrapes. Pure."""

API_GROUP = "benchpilot.io"
API_VERSION = "v1alpha1"
KIND = "BenchmarkRun"
PLURAL = "benchmarkruns"
SHARD_CASES_METRIC = "benchpilot_shard_cases"  # what the operator scrapes from runner pods for progress
