"""The sink's buffering, retry and resume; the heartbeat's health verdict."""

from __future__ import annotations

import asyncio
import datetime as dt

import fsspec
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from benchpilot_runner import sink as S
from benchpilot_runner.health import Heartbeat


def row(i: int) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"run": "r", "namespace": "ns", "case_id": f"c{i:04d}", "suite": "workflow", "model": "sim/weak",
            "prompt_type": "baseline", "difficulty": "easy", "task_type": "simple_task", "instance": i,
            "shard": 0, "status": "success", "score": 1.0, "latency_s": 0.1, "turns": 1, "tool_calls": 1,
            "prompt_tokens": 1, "completion_tokens": 1, "started_at": now, "finished_at": now}


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
    sink = S.ShardSink(memfs, "/out/run", 0, flush_rows=3, flush_s=10, clock=lambda: clock[0])
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
    assert sink.stats.parts == ["part-00001-00000.parquet", "part-00001-00001.parquet"]
    assert FlakyMemoryFS.puts == 2, "one PUT per part"


async def test_failed_writes_keep_rows_until_written(memfs):
    FlakyMemoryFS.failing = 3
    sink = S.ShardSink(memfs, "/out/run", 0, flush_rows=2, flush_s=10, max_backoff_s=0.01)
    for i in range(5):
        sink.add(row(i))
    assert await sink.flush()
    assert sink.stats.write_failures == 3 and sink.buffer == []
    (part,) = S.list_parts(memfs, "/out/run/shard-00000")
    assert S.read_case_ids(memfs, part) == [f"c{i:04d}" for i in range(5)]


async def test_flush_gives_up_at_deadline_and_keeps_rows(memfs):
    FlakyMemoryFS.failing = 10**6
    clock = [0.0]

    def tick():
        clock[0] += 0.5
        return clock[0]

    sink = S.ShardSink(memfs, "/out/run", 0, flush_rows=2, flush_s=10, max_backoff_s=0.01, clock=tick)
    sink.add(row(1))
    assert not await sink.flush(deadline=3.0)
    assert len(sink.buffer) == 1


async def test_resume_reads_existing_parts_and_numbers_the_next_attempt(memfs):
    first = S.ShardSink(memfs, "/out/run", 0, flush_rows=10, flush_s=10)
    first.load_existing()
    for i in range(4):
        first.add(row(i))
    await first.flush()
    second = S.ShardSink(memfs, "/out/run", 0, flush_rows=10, flush_s=10)
    assert second.load_existing() == {f"c{i:04d}" for i in range(4)}
    assert second.attempt == 2
    second.add(row(9))
    await second.flush()
    assert sorted(p.rsplit("/", 1)[-1] for p in S.list_parts(memfs, "/out/run/shard-00000")) == [
        "part-00001-00000.parquet", "part-00002-00000.parquet"]


async def test_concurrent_adds_during_a_slow_write_are_not_lost(memfs):
    sink = S.ShardSink(memfs, "/out/run", 0, flush_rows=1000, flush_s=1000)
    for i in range(10):
        sink.add(row(i))
    flushing = asyncio.create_task(sink.flush())
    await asyncio.sleep(0)
    for i in range(10, 15):
        sink.add(row(i))
    await flushing
    await sink.flush()
    ids = [c for p in S.list_parts(memfs, "/out/run/shard-00000") for c in S.read_case_ids(memfs, p)]
    assert sorted(ids) == [f"c{i:04d}" for i in range(15)]


def test_local_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    fs = fsspec.filesystem("file")
    S.write_whole(fs, str(tmp_path / "a" / "part-00001-00000.parquet"), S.rows_to_parquet([row(1)]))
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["part-00001-00000.parquet"]
    assert pq.read_table(tmp_path / "a" / "part-00001-00000.parquet").num_rows == 1


def test_check_writable_names_the_problem(tmp_path):
    (tmp_path / "file").write_text("x")
    fs = fsspec.filesystem("file")
    with pytest.raises(S.OutputError, match="not writable"):
        S.check_writable(fs, str(tmp_path / "file" / "sub"))
    S.check_writable(fs, str(tmp_path / "ok"))
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
