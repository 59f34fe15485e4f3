"""Operator metrics (names are part of the contract; the dashboard and alerts depend on them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

from .status import PHASES

disable_created_metrics()


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry = registry if registry is not None else CollectorRegistry()
        self.runs = Gauge("benchpilot_runs", "BenchmarkRuns by phase.", ["phase"], registry=registry)
        self.shards = Gauge("benchpilot_shards", "Shards of a run by phase.", ["run", "phase"], registry=registry)
        self.progress = Gauge("benchpilot_run_progress_ratio", "Completed cases / total cases.", ["run"],
                              registry=registry)
        self.retries = Counter("benchpilot_shard_retries", "Shards re-created or failed, by reason.",
                               ["run", "reason"], registry=registry)
        self._phase: dict[str, str] = {}
        for p in PHASES:
            self.runs.labels(p).set(0)

    @staticmethod
    def key(namespace: str, name: str) -> str:
        return f"{namespace}/{name}"

    def observe(self, run: str, status: dict) -> None:
        self._phase[run] = status.get("phase", "Pending")
        for p in PHASES:
            self.runs.labels(p).set(sum(1 for v in self._phase.values() if v == p))
        shards = status.get("shards") or {}
        for p in ("pending", "running", "succeeded", "failed"):
            self.shards.labels(run, p).set(shards.get(p, 0))
        cases = status.get("cases") or {}
        self.progress.labels(run).set((cases.get("completed", 0) / cases["total"]) if cases.get("total") else 0)

    def forget(self, run: str) -> None:
        self._phase.pop(run, None)
        for p in PHASES:
            self.runs.labels(p).set(sum(1 for v in self._phase.values() if v == p))
        for p in ("pending", "running", "succeeded", "failed"):
            try:
                self.shards.remove(run, p)
            except KeyError:
                pass
        try:
            self.progress.remove(run)
        except KeyError:
            pass
