"""Runner metrics. The names are part of the contract (DESIGN.md); the dashboard depends on them."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from .contract.api import SHARD_CASES_METRIC

disable_created_metrics()  # no *_created series: they double the series count and nothing reads them

CASE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _RSSCollector:
    """benchpilot_memory_rss_bytes: this process's resident memory, read at scrape time."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        try:
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return
        yield GaugeMetricFamily("benchpilot_memory_rss_bytes", "Resident memory of this runner process.", rss)


class RunnerMetrics:
    """One set of runner metrics on its own registry (so tests and several runs never collide)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.cases = Counter("benchpilot_cases", "Cases finished, by outcome.",
                             ["run", "model", "prompt_type", "status"], registry=r)
        self.case_seconds = Histogram("benchpilot_case_seconds", "Wall time of one case.", ["run", "model"],
                                      buckets=CASE_BUCKETS, registry=r)
        self.llm_requests = Counter("benchpilot_llm_requests", "LLM requests, by HTTP code or error kind.",
                                    ["run", "model", "code"], registry=r)
        self.llm_request_seconds = Histogram("benchpilot_llm_request_seconds", "Latency of one LLM request.",
                                             ["run", "model"], buckets=REQUEST_BUCKETS, registry=r)
        self.inflight = Gauge("benchpilot_inflight_cases", "Cases running now.", ["run"], registry=r)
        self.last_progress = Gauge("benchpilot_last_progress_timestamp_seconds",
                                   "Unix time of the last finished case or LLM turn.", ["run"], registry=r)
        self.rows_flushed = Counter("benchpilot_rows_flushed", "Result rows written to storage.", ["run"],
                                    registry=r)
        self.memory_request = Gauge("benchpilot_memory_request_bytes",
                                    "Memory this runner was sized for (the pod's request).", ["run"], registry=r)
        r.register(_RSSCollector())
        self.tokens = Counter("benchpilot_tokens", "LLM tokens used, by kind (prompt, completion).",
                              ["run", "model", "kind"], registry=r)
        self.cost = Counter("benchpilot_cost_usd", "Cost of the cases finished, in USD, from the models' prices.",
                            ["run", "model"], registry=r)
        self.reused_answers = Counter("benchpilot_reused_answers", "Answers taken from earlier results, not paid.",
                                      ["run", "model"], registry=r)
        self.saved_tokens = Counter("benchpilot_saved_tokens", "Tokens of the reused answers (not paid again).",
                                    ["run", "model"], registry=r)
        self.saved_usd = Counter("benchpilot_saved_usd", "Cost of the reused answers at the models' prices (saved).",
                                 ["run", "model"], registry=r)
        self.served_model_changes = Counter("benchpilot_served_model_changes",
                                            "Times an endpoint model answered as another served model or fingerprint.",
                                            ["run", "model"], registry=r)
        self.cases_planned = Gauge(SHARD_CASES_METRIC, "Cases of this process's shards, by state.",
                                   ["run", "state"], registry=r)
