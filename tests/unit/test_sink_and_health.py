"""The sink's buffering, retry and resume; the heartbeat's health verdict."""

from __future__ import annotations

import asyncio
import json
import datetime as dt
import time

import fsspec
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from benchpilot_runner.results import lease as L
from benchpilot_runner.results import resume, rows, store
from benchpilot_runner.results import sink as SK
from benchpilot_runner.health import Heartbeat


def row(i: int, status: str = "success", attempt: int = 1) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"run": "r", "namespace": "ns", "case_id": f"c{i:04d}", "suite": "workflow", "model": "sim/weak",
            "prompt_type": "baseline", "difficulty": "easy", "task_type": "simple_task", "instance": i,
            "shard": 0, "status": status, "score": 1.0, "latency_s": 0.1, "turns": 1, "tool_calls": 1,
            "attempt": attempt, "prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0.5,
            "started_at": now, "finished_at": now}


def ids_in(fs, folder):
    return [c for p in rows.list_parts(fs, folder) for c in rows.read_part(fs, p, ["case_id"]).column("case_id").to_pylist()]


class FlakyMemoryFS(MemoryFileSystem):
    """An in-memory filesystem whose writes fail while ``failing`` is above zero."""

    failing = 0
    puts = 0

    def pipe_file(self, path, value, **kwargs):
        FlakyMemoryFS.puts += 1
        if FlakyMemoryFS.failing > 0:
            FlakyMemoryFS.failing -= 1
            raise ConnectionError("storage is down")
        return super().pipe_file(path, value, **kwargs)


@pytest.fixture
def memfs():
    fs = FlakyMemoryFS(skip_instance_cache=True)
    fs.store.clear()
    fs.pseudo_dirs.clear()
    FlakyMemoryFS.failing = FlakyMemoryFS.puts = 0
    return fs


async def test_flush_thresholds(memfs):
    clock = [0.0]
    sink = SK.ShardSink(memfs, "/out/run", 0, flush_rows=3, flush_s=10, clock=lambda: clock[0], writer="w1")
    sink.add(row(1))
    assert not sink.due()
    sink.add(row(2))
    sink.add(row(3))
    assert sink.due()
    await sink.flush()
    sink.add(row(4))
    assert not sink.due()
    clock[0] = 11
    assert sink.due()
    await sink.flush()
    assert sink.stats.parts == ["part-00001-00000-w1.parquet", "part-00001-00001-w1.parquet"]
    assert FlakyMemoryFS.puts == 2, "one PUT per part"


async def test_failed_writes_keep_rows_until_written(memfs):
    FlakyMemoryFS.failing = 3
    sink = SK.ShardSink(memfs, "/out/run", 0, flush_rows=2, flush_s=10, max_backoff_s=0.01)
    for i in range(5):
        sink.add(row(i))
    assert await sink.flush()
    assert sink.stats.write_failures == 3 and sink.buffer == []
    assert ids_in(memfs, "/out/run/shard-00000") == [f"c{i:04d}" for i in range(5)]


async def test_flush_gives_up_at_deadline_and_keeps_rows(memfs):
    FlakyMemoryFS.failing = 10**6
    clock = [0.0]

    def tick():
        clock[0] += 0.5
        return clock[0]

    sink = SK.ShardSink(memfs, "/out/run", 0, flush_rows=2, flush_s=10, max_backoff_s=0.01, clock=tick)
    sink.add(row(1))
    assert not await sink.flush(deadline=3.0)
    assert len(sink.buffer) == 1


async def test_resume_counts_only_final_rows_as_done(memfs):
    first = SK.ShardSink(memfs, "/out/run", 0, flush_rows=10, flush_s=10, writer="a")
    for i in range(4):
        first.add(row(i))
    first.add(row(4, "error"))
    first.add(row(5, "timeout"))
    await first.flush()
    state = resume.read_state(memfs, "/out/run/shard-00000", recursive=False)
    assert state.done == {f"c{i:04d}" for i in range(4)}, "error and timeout rows are not done"
    assert state.next_attempt("c0004") == 2 and state.next_attempt("c0005") == 2
    assert state.max_attempt == 1 and state.spent_usd == 3.0 and state.spent_tokens == 12
    second = SK.ShardSink(memfs, "/out/run", 0, flush_rows=10, flush_s=10, writer="b", attempt=state.max_attempt + 1)
    second.add(row(4, "error", attempt=2))
    second.add(row(5, "failure", attempt=2))
    await second.flush()
    state = resume.read_state(memfs, "/out/run/shard-00000", recursive=False)
    assert "c0005" in state.done and state.next_attempt("c0004") == 3
    assert sorted(p.rsplit("/", 1)[-1] for p in rows.list_parts(memfs, "/out/run/shard-00000")) == [
        "part-00001-00000-a.parquet", "part-00002-00000-b.parquet"]


async def test_two_writers_never_overwrite_each_other(memfs):
    """Both start with the same attempt number (as two `benchpilot run` did): no part is lost."""
    a = SK.ShardSink(memfs, "/out/run", 0, flush_rows=10, flush_s=10, attempt=1)
    b = SK.ShardSink(memfs, "/out/run", 0, flush_rows=10, flush_s=10, attempt=1)
    for i in range(5):
        a.add(row(i))
        b.add(row(100 + i))
    await asyncio.gather(a.flush(), b.flush())
    assert sorted(ids_in(memfs, "/out/run/shard-00000")) == sorted(
        [f"c{i:04d}" for i in range(5)] + [f"c{100 + i:04d}" for i in range(5)])


def test_lease_sees_an_earlier_live_writer_and_ignores_dead_ones(memfs):
    first = L.Lease(memfs, "/out/run", "w1", [0, 1], started=1.0)
    first.write()
    second = L.Lease(memfs, "/out/run", "w2", [1], started=2.0)
    second.write()
    assert second.conflict()["writer"] == "w1", "the later writer yields"
    assert first.conflict() is None, "the earlier writer goes on"
    other_shard = L.Lease(memfs, "/out/run", "w3", [5], started=3.0)
    assert other_shard.conflict() is None, "writers of other shards do not conflict"
    first.release()
    assert second.conflict() is None
    # a lease of a process on this host that is gone is stale at once (kill -9, then rerun)
    import json, socket
    memfs.pipe_file("/out/run/_writers/dead.json", json.dumps({
        "writer": "dead", "host": socket.gethostname(), "pid": 2**22 + 12345, "shards": [1], "started": 0.5,
        "renewed": __import__("time").time()}).encode())
    assert second.conflict() is None


async def test_concurrent_adds_during_a_slow_write_are_not_lost(memfs):
    sink = SK.ShardSink(memfs, "/out/run", 0, flush_rows=1000, flush_s=1000)
    for i in range(10):
        sink.add(row(i))
    flushing = asyncio.create_task(sink.flush())
    await asyncio.sleep(0)
    for i in range(10, 15):
        sink.add(row(i))
    await flushing
    await sink.flush()
    assert sorted(ids_in(memfs, "/out/run/shard-00000")) == [f"c{i:04d}" for i in range(15)]


def test_rows_are_scrubbed_before_they_are_written():
    from benchpilot_runner import redact

    redact.register("canary-key-0123456789")
    r = row(1, "error")
    r["error_message"] = 'HTTP 401: {"echo": "Authorization: Bearer canary-key-0123456789"} sk-abcdefghijklmnop'
    data = rows.rows_to_parquet([rows.make_row(**r)])  # a row is made once, and scrubbed there
    msg = pq.read_table(__import__("io").BytesIO(data)).column("error_message")[0].as_py()
    assert "canary-key-0123456789" not in msg and "sk-abcdefghijklmnop" not in msg and "REDACTED" in msg


def test_a_row_has_exactly_the_schemas_columns():
    made = rows.make_row(**row(1))
    assert tuple(made) == rows.COLUMNS and made["error_type"] is None
    with pytest.raises(TypeError, match="unknown result column.*error_mesage"):
        rows.make_row(**row(1), error_mesage="a misspelt column would have been a silent null")
    with pytest.raises(TypeError, match="case_id"):
        rows.make_row(**{**row(1), "case_id": None})
    long = rows.make_row(**row(1), details={"sql": "x" * 20000}, error_message="e" * 2000)
    assert json.loads(long["details"]) == {"truncated": True, "bytes": 20011} and len(long["error_message"]) == 500


def test_success_manifest_put_is_retried(memfs):
    FlakyMemoryFS.failing = 2  # e.g. a 503 from a busy store
    sink = SK.ShardSink(memfs, "/out/run", 0, flush_rows=10, flush_s=10)
    assert asyncio.run(sink.write_success(5, {"success": 5}))
    assert memfs.exists("/out/run/shard-00000/_SUCCESS")


def test_local_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    fs = fsspec.filesystem("file")
    store.write_whole(fs, str(tmp_path / "a" / "part-00001-00000.parquet"), rows.rows_to_parquet([row(1)]))
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["part-00001-00000.parquet"]
    assert pq.read_table(tmp_path / "a" / "part-00001-00000.parquet").num_rows == 1


def test_check_writable_names_the_problem(tmp_path):
    (tmp_path / "file").write_text("x")
    fs = fsspec.filesystem("file")
    with pytest.raises(store.OutputError, match="not writable"):
        store.check_writable(fs, str(tmp_path / "file" / "sub"))
    store.check_writable(fs, str(tmp_path / "ok"))
    assert list((tmp_path / "ok").iterdir()) == []


def test_heartbeat_health():
    now = [100.0]
    hb = Heartbeat(hang_timeout_s=10, clock=lambda: now[0])
    assert hb.healthy()
    hb.busy = True
    now[0] = 109
    assert hb.healthy()
    now[0] = 111
    assert not hb.healthy() and hb.report()["stalled_s"] == 11
    hb.beat()
    assert hb.healthy()
    now[0] = 200
    hb.busy = False
    assert hb.healthy(), "idle with nothing left to do is not a hang"


# ---------------------------------------------------------------- final writes within a budget


class SlowMemoryFS(FlakyMemoryFS):
    """A store whose client retries inside each call for a long time (s3fs against 503 SlowDown)."""

    def pipe_file(self, path, value, **kwargs):
        if path.endswith("_SUCCESS"):
            time.sleep(3)
            raise ConnectionError("SlowDown: please reduce your request rate")
        return super().pipe_file(path, value, **kwargs)


async def test_a_marker_gets_one_budget_counting_the_clients_own_retries():
    from benchpilot_runner.results.markers import put_retrying

    fs = SlowMemoryFS(skip_instance_cache=True)
    t0 = time.monotonic()
    written = await put_retrying(fs, "/out/run/shard-00000/_SUCCESS", b"{}", what="shard _SUCCESS",
                                 deadline=time.monotonic() + 0.5)
    assert not written and time.monotonic() - t0 < 1.5, "one budget, not attempts × the client's retries"
    assert "still retrying" in written.error
    FlakyMemoryFS.failing = 2  # quick failures are retried within the budget
    assert await put_retrying(fs, "/out/run/part", b"x", what="part", deadline=time.monotonic() + 5)
    FlakyMemoryFS.failing = 1000
    try:
        failed = await put_retrying(fs, "/out/run/part", b"x", what="part", deadline=time.monotonic() + 0.6)
    finally:
        FlakyMemoryFS.failing = 0
    assert not failed and "storage is down" in failed.error


async def test_a_call_past_its_budget_is_abandoned_and_errors_come_back():
    from benchpilot_runner.results.bounded import call_within

    with pytest.raises(TimeoutError):
        await call_within(0.2, time.sleep, 2)
    with pytest.raises(ZeroDivisionError):
        await call_within(1, lambda: 1 / 0)
    assert await call_within(1, lambda: "ok") == "ok"


def test_markers_not_written_exit_1_saying_the_rows_are_safe():
    from benchpilot_runner.outcome import outcome
    from benchpilot_runner.shard import ShardResult

    done = ShardResult(0, 10, 0, 10, complete=True, counts={"success": 10}, final=10)
    refused = ShardResult(1, 10, 0, 10, complete=False, counts={"success": 10}, final=10,
                          marker_error="within 30s (SlowDown)")
    code, lines = outcome([done, refused], interrupted=None, auth_refused=False)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("every result row is written, but the _SUCCESS marker of shard 1 could not be "
                               "written within 30s (SlowDown)") and "run the same command again" in lines[0]
    code, lines = outcome([done], interrupted=None, auth_refused=False, run_marker_error="within 30s (x)")
    assert code == 1 and "the run's _SUCCESS marker" in lines[0]
    assert outcome([done], interrupted=None, auth_refused=False) == (0, [])
