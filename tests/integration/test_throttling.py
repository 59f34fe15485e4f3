"""Throttling through the real runner and the fake server: random 429s, a limit stated in headers, a
case whose deadline passes in our own queue (bench/rate_limits.py measures the throughput)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchpilot_runner.contract.outcomes import ExitCode, FINAL_STATUSES
from benchpilot_runner.contract.parse import parse_manifest
from tests.helpers import manifest, run_cli, write_manifest

pytestmark = pytest.mark.slow


def rows_under(root: Path) -> list[dict]:
    return [r for p in sorted(root.rglob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def doc_for(tmp_path: Path, base_url: str, name: str, *, endpoint: dict, instances: int = 4,
            case_timeout: float = 10, model: str = "slow-50") -> Path:
    doc = manifest(sharding={"shards": 2, "concurrencyPerShard": 4}, limits={"caseTimeoutSeconds": case_timeout},
                   output={"flushEveryRows": 20, "flushEverySeconds": 1})
    doc["metadata"]["name"] = name
    doc["spec"]["matrix"].update(models=[f"openai/{model}"], promptTypes=["baseline", "optimal"],
                                 difficulties=["hard"], taskTypes=["basic_task", "data_pipeline"], instances=instances)
    doc["spec"]["endpoint"] = {"baseURL": base_url, "requestTimeoutSeconds": 2, "maxRetries": 3, **endpoint}
    return write_manifest(tmp_path / f"{name}.yaml", doc)


def test_random_429s_do_not_starve_the_run(tmp_path, fake_llm):
    """10 % of requests answered 429 (Retry-After: 1) whatever the rate: every case finishes, none of
    them waits out its deadline in the limiter (0.1 held the rate at its floor: 142 of 200 timed out)."""
    fake_llm.fake.faults("random429", seed=7, throttle=0.10)
    path = doc_for(tmp_path, fake_llm.url("random429"), "random429", endpoint={"qps": 50}, instances=6)
    out = tmp_path / "out"
    done = run_cli("run", str(path), "--output", str(out), "--no-progress", env={"BENCHPILOT_API_KEY": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = rows_under(out)
    total = parse_manifest(__import__("yaml").safe_load(path.read_text())).total_cases
    assert len(rows) == total and {r["status"] for r in rows} <= set(FINAL_STATUSES)
    assert fake_llm.fake.throttled["random429"] >= 5, "the server did throttle"
    assert fake_llm.fake.throttling.answered[("random429", "throttle")] == fake_llm.fake.throttled["random429"]


def test_a_stated_limit_is_kept_without_a_429(tmp_path, fake_llm):
    """No limit configured: the provider's headers (Anthropic's words) say 600 a minute, and the client
    keeps to it from the first answers on, so the provider never has to refuse."""
    fake_llm.fake.stated_limit("stated600", 600, burst_s=2.0, style="anthropic")
    path = doc_for(tmp_path, fake_llm.url("stated600"), "stated600", endpoint={}, instances=8, model="fixed-5")
    out = tmp_path / "out"
    done = run_cli("run", str(path), "--output", str(out), "--no-progress", env={"BENCHPILOT_API_KEY": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert {r["status"] for r in rows_under(out)} <= set(FINAL_STATUSES)
    assert fake_llm.fake.throttling.answered[("stated600", None)] >= 32
    assert fake_llm.fake.throttled["stated600"] == 0


def test_a_deadline_passed_in_our_own_queue_says_so(tmp_path, fake_llm):
    """One request every 2 s for 8 concurrent cases of several turns, 3 s each: cases time out waiting
    in benchpilot's limiter, and their rows say so (not the provider's timeout, not a plain case timeout)."""
    path = doc_for(tmp_path, fake_llm.url("queued"), "queued", endpoint={"qps": 0.5}, case_timeout=3)
    out = tmp_path / "out"
    done = run_cli("run", str(path), "--output", str(out), "--no-progress", env={"BENCHPILOT_API_KEY": ""})
    assert done.returncode == int(ExitCode.INCOMPLETE), done.stderr[-2000:]
    rows = rows_under(out)
    kinds = Counter((r["status"], r["error_type"]) for r in rows)
    # nearly every case's deadline passes while it waits for the limiter; one in flight at that moment
    # is a plain case timeout
    assert kinds[("timeout", "limiter_timeout")] >= 0.75 * len(rows) >= 4, kinds
    assert not any(r["error_type"] == "request_timeout" for r in rows)
    queued = next(r for r in rows if r["error_type"] == "limiter_timeout")
    assert "benchpilot's own rate limiter" in queued["error_message"] and "'default'" in queued["error_message"]
    assert "timeout" in done.stderr and "run the same command again" in done.stderr
