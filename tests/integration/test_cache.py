"""The shared read-only cache: built with the real encoder, mapped once, shared, verified."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchpilot_runner.resources import CacheError, open_cache
from benchpilot_runner.suites.workflow import generator
from benchpilot_runner.suites.workflow.case import CacheRetriever
from tests.helpers import BENCHPILOT, ROOT, manifest, run_cli, write_manifest

pytestmark = pytest.mark.slow
CACHE_INSTANCES = 4
SYNTHETIC_MIB = 40


@pytest.fixture(scope="session")
def built_cache(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cache") / "c"
    res = run_cli("cache", "build", "--out", str(out), "--instances", str(CACHE_INSTANCES),
                  "--synthetic-size", str(SYNTHETIC_MIB), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def copy_cache(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def make_read_only(root: Path) -> None:
    for p in sorted(root.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    root.chmod(0o555)


def test_manifest_describes_every_file(built_cache):
    m = json.loads((built_cache / "manifest.json").read_text())
    onnx = m["model"].pop("onnx")
    assert m["model"] == {"name": "sentence-transformers/all-MiniLM-L6-v2", "dimensions": 384, "dir": "model"}
    assert onnx["file"] == "model/model.onnx" and onnx["maxAbsDiff"] <= onnx["tolerance"] == 1e-5
    assert {"embeddings.npy", "index.faiss", "texts.json", "keys.json", "model/model.safetensors",
            "model/model.onnx", "model/model.onnx.data"} <= set(m["files"])
    assert (m["suite"], m["suite_version"]) == ("workflow", "workflow-1")
    emb = np.load(built_cache / "embeddings.npy", mmap_mode="r")
    assert emb.dtype == np.float32 and emb.shape == (m["rows"]["total"], 384)
    assert emb.nbytes / 2**20 == pytest.approx(SYNTHETIC_MIB, rel=0.01)
    tools, tasks = m["groups"]["tools"], m["groups"]["tasks"]
    assert tools == [0, 30] and tasks[0] == 30 and 0 < tasks[1] - 30 <= 5 * 3 * CACHE_INSTANCES
    assert m["rows"]["real"] == tasks[1] and m["rows"]["total"] == m["rows"]["real"] + m["rows"]["synthetic"]
    norms = np.linalg.norm(emb[:100], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)


def test_retrieval_is_semantic(built_cache):
    cache = open_cache(built_cache)
    r = CacheRetriever(cache)
    assert r.retrieve("send the team an email with the results", 3)[0] == "email_sender"
    assert "api_authenticator" in r.retrieve("get an access token for the billing service", 3)
    assert "csv_parser" in r.retrieve("turn comma separated text into rows", 3)
    task = generator.generate("api_integration", "hard", 0, retriever=r)
    assert set(s.tool for s in task.steps) <= set(task.offered)


def test_encoder_loads_lazily_once_behind_an_lru(built_cache):
    code = textwrap.dedent(f"""
        import json, sys
        from benchpilot_runner.resources import open_cache
        from benchpilot_runner.suites.workflow import generator
        from benchpilot_runner.suites.workflow.case import CacheRetriever
        c = open_cache({str(built_cache)!r}); r = CacheRetriever(c)
        for tt in ("simple_task", "data_pipeline"):
            for i in range({CACHE_INSTANCES}):
                generator.generate(tt, "medium", i, retriever=r)
        before = (c.encoder_loaded, c.encoder_loads, "torch" in sys.modules)
        a = r.retrieve("a text that is not in the cache", 5)
        calls = c.encoder_calls
        b = r.retrieve("a text that is not in the cache", 5)
        hits = int(c.encoder_calls == calls)  # the repeated text came from the LRU, not the encoder
        generator.generate("basic_task", "easy", {CACHE_INSTANCES + 50}, retriever=r)
        print(json.dumps([before, c.encoder_loads, a == b, hits]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    before, loads, same, hits = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == [False, 0, False], "cached tasks need neither the encoder nor torch"
    assert loads == 1 and same and hits >= 1


# As root, file modes are not enforced; without these two capabilities they are (uid stays 0).
ENFORCE_MODES = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
                 if os.geteuid() == 0 and shutil.which("setpriv") else [])


def test_read_only_cache_works_when_modes_are_enforced(built_cache, tmp_path):
    ro = copy_cache(built_cache, tmp_path / "ro-cache")
    make_read_only(ro)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_dir.chmod(0o777)
    tmp_path.chmod(0o755)
    doc = manifest()
    doc["spec"]["matrix"]["instances"] = CACHE_INSTANCES
    path = write_manifest(tmp_path / "m.yaml", doc)
    path.chmod(0o644)
    try:
        probe = subprocess.run([*ENFORCE_MODES, "sh", "-c", f"touch {ro}/x"], capture_output=True)
        assert probe.returncode != 0, "the cache folder must really be unwritable for this test"
        res = subprocess.run([*ENFORCE_MODES, *BENCHPILOT, "run", str(path), "--cache", str(ro), "--output",
                              str(out_dir), "--no-progress"], capture_output=True, text=True, timeout=300,
                             cwd=ROOT, env={**os.environ, "HOME": str(out_dir)})
        assert res.returncode == 0, res.stderr[-3000:]
        assert '"retrieval": "embedding:sentence-transformers/all-MiniLM-L6-v2"' in res.stderr
        assert not any(p.name.endswith(".tmp") for p in ro.rglob("*")), "nothing written into the cache"
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.parametrize("damage", ["flip-embeddings", "flip-index", "truncate", "no-manifest"])
def test_corrupt_cache_fails_at_start_with_exit_2(built_cache, tmp_path, damage):
    bad = copy_cache(built_cache, tmp_path / "bad")
    if damage.startswith("flip"):
        target = bad / ("embeddings.npy" if damage == "flip-embeddings" else "index.faiss")
        with open(target, "r+b") as fh:
            fh.seek(target.stat().st_size // 2)
            byte = fh.read(1)
            fh.seek(-1, 1)
            fh.write(bytes([byte[0] ^ 0x01]))
        words = ["sha256", "corrupt"]
    elif damage == "truncate":
        with open(bad / "texts.json", "r+b") as fh:
            fh.truncate(10)
        words = ["bytes"]
    else:
        (bad / "manifest.json").unlink()
        words = ["no manifest.json"]
    path = write_manifest(tmp_path / "m.yaml", manifest())
    res = run_cli("run", str(path), "--cache", str(bad), "--output", str(tmp_path / "out"))
    assert res.returncode == 2 and all(w in res.stderr for w in words), res.stderr[-2000:]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("part-*"))
    with pytest.raises(CacheError):
        from benchpilot_runner.resources import Cache

        Cache(bad)


PSS_CHILD = textwrap.dedent("""
    import sys
    import faiss, numpy
    from benchpilot_runner.footprint import smaps_rollup
    from benchpilot_runner.resources import open_cache
    from benchpilot_runner.suites.workflow.registry import TOOLS  # modules are not the cache: imported before
    before = smaps_rollup()["Pss"]
    cache = open_cache(sys.argv[1])
    cache.touch()
    cache.search("tools", TOOLS[3].text(), 5)  # a cached text: no encoder
    assert not cache.encoder_loaded
    print(before, flush=True)
    sys.stdin.read()
""")


def cache_pss_deltas(cache: Path, n: int) -> list[int]:
    """Start n processes that open and fully read the cache; each one's PSS growth, all alive at once."""
    procs = [subprocess.Popen([sys.executable, "-c", PSS_CHILD, str(cache)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    try:
        befores = [int(p.stdout.readline()) for p in procs]
        nows = [int(next(ln.split()[1] for ln in open(f"/proc/{p.pid}/smaps_rollup")
                         if ln.startswith("Pss:"))) * 1024 for p in procs]
        return [now - before for now, before in zip(nows, befores)]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(30)


def test_eight_processes_share_one_copy(built_cache):
    one = cache_pss_deltas(built_cache, 1)[0]
    files = sum((built_cache / f).stat().st_size for f in ("embeddings.npy", "index.faiss"))
    assert one >= 0.9 * files, "a lone process pays for the whole cache"
    eights = cache_pss_deltas(built_cache, 8)
    eight = sum(eights)
    assert eight <= 1.3 * one, (f"8 processes cost {eight / 2**20:.1f} MiB, one {one / 2**20:.1f} MiB "
                                f"({', '.join(f'{d / 2**20:.1f}' for d in eights)})")


def test_footprint_reports_the_formula_inputs(built_cache):
    res = run_cli("footprint", "--cache", str(built_cache), "--concurrency", "8", timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    fp = json.loads(res.stdout)
    files_mib = sum((built_cache / f).stat().st_size for f in ("embeddings.npy", "index.faiss")) / 2**20
    assert 30 < fp["encoderMiB"] < 250, "the query encoder (the ONNX export) is counted once per pod"
    assert 0.9 * files_mib <= fp["sharedMiB"] - fp["encoderMiB"] <= 1.3 * files_mib
    assert 0 < fp["perWorkerMiB"] < 5 and fp["baseMiB"] > 10
    assert fp["suggestedSpec"]["resources"]["footprint"]["sharedMiB"] == fp["sharedMiB"]


# ----------------------------------------------------------------------------- text2sql through the cache


@pytest.fixture(scope="module")
def sql_cache(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("t2s-cache") / "c"
    res = run_cli("cache", "build", "--suite", "text2sql", "--out", str(out), "--instances", "2", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_text2sql_cache_holds_columns_values_and_questions(sql_cache):
    m = json.loads((sql_cache / "manifest.json").read_text())
    assert (m["suite"], m["suite_version"]) == ("text2sql", "text2sql-1")
    dbs = ("flights", "hospital", "library", "retail", "university")
    assert {f"schema:{d}" for d in dbs} | {f"values:{d}" for d in dbs} | {"questions"} == set(m["groups"])
    cache = open_cache(sql_cache, suite="text2sql")
    top = cache.search("schema:retail", "Which customers live in Lisbon?", 3)
    assert "customers.city" in top, top
    values = cache.search("values:retail", "orders that were returned", 3)
    assert "orders.status=returned" in values, values
    with pytest.raises(CacheError, match="built for suite 'text2sql'"):
        open_cache(sql_cache, suite="workflow")


def test_concurrent_new_texts_are_embedded_in_one_batch(sql_cache):
    code = textwrap.dedent(f"""
        import asyncio, json
        import numpy as np
        from benchpilot_runner.resources import EMBED_BATCH, Cache
        c = Cache({str(sql_cache)!r})
        texts = [f"how many orders did customer number {{i}} place in 2023" for i in range(64)]
        async def main():
            return await asyncio.gather(*(c.embed_async(t) for t in texts))
        vecs = asyncio.run(main())
        calls = c.encoder_calls
        same = all(np.allclose(v, c._encode(t), atol=1e-5) for v, t in zip(vecs[:4], texts[:4]))
        asyncio.run(main())  # now from the LRU: no encoder call
        print(json.dumps([calls, c.encoder_calls - 4, c.encoder_loads, same, -(-64 // EMBED_BATCH)]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    calls, after, loads, same, batches = json.loads(out.stdout.strip().splitlines()[-1])
    assert calls == batches < 64, "64 concurrent texts, encoded in full batches"
    assert after == calls and loads == 1 and same


def test_text2sql_runs_with_embedding_retrieval_and_refuses_a_wrong_cache(sql_cache, built_cache, tmp_path):
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "t2c"},
           "spec": {"suite": "text2sql", "matrix": {"models": ["sim/oracle"], "promptTypes": ["zero_shot"],
                                                    "instances": 2}}}
    path = write_manifest(tmp_path / "m.yaml", doc)
    res = run_cli("run", str(path), "--cache", str(sql_cache), "--output", str(tmp_path / "out"), "--no-progress",
                  timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert '"retrieval": "embedding:sentence-transformers/all-MiniLM-L6-v2"' in res.stderr
    wrong = run_cli("run", str(path), "--cache", str(built_cache), "--output", str(tmp_path / "o2"))
    assert wrong.returncode == 2 and "built for suite 'workflow'" in wrong.stderr, wrong.stderr[-2000:]
    wf = write_manifest(tmp_path / "wf.yaml", manifest())
    wrong = run_cli("run", str(wf), "--cache", str(sql_cache), "--output", str(tmp_path / "o3"))
    assert wrong.returncode == 2 and "rebuild the cache" in wrong.stderr
