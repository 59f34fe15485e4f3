"""The shared read-only cache, opened once per process, memory-mapped, verified.

Every concurrent case — and every process of a pod — uses the same pages: the embeddings are a
``numpy.load(mmap_mode='r')`` view and the FAISS index is read with ``IO_FLAG_MMAP_IFC``, so
nothing is copied per worker. The encoder — the cache's ONNX export, run by onnxruntime, no torch
(:mod:`benchpilot_runner.encoder`) — is loaded lazily, only when a text whose embedding is not in
the cache must be embedded, and query embeddings are kept in a bounded LRU. Concurrent cases that
need a new text embedded are batched: one encoder call for all of them, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .cache import FORMAT, sha256_file, text_key
from .contract.outcomes import ConfigError
from .encoder import RUNTIME_FILES, OnnxEncoder

QUERY_LRU = 4096
EMBED_BATCH = 8  # texts per encoder call: larger batches raised peak RSS (bench/text2sql_pipeline.py), not speed


class CacheError(ConfigError):
    """The cache folder is missing, corrupt or made for another suite version."""


class Cache:
    def __init__(self, path: str | Path, *, verify: bool = True, suite: str | None = None):
        import faiss

        self.path = Path(path)
        mf = self.path / "manifest.json"
        try:
            self.manifest = json.loads(mf.read_text())
        except FileNotFoundError:
            raise CacheError(f"{self.path} is not a benchpilot cache: no manifest.json "
                             "(make one with 'benchpilot cache build --out DIR')") from None
        except ValueError as exc:
            raise CacheError(f"{mf} is not valid JSON: {exc}") from None
        m = self.manifest
        if m.get("format") != FORMAT:
            raise CacheError(f"{mf}: cache format {m.get('format')!r}, this runner reads format {FORMAT}; "
                             "rebuild the cache with 'benchpilot cache build'")
        if suite is not None:
            self.check_suite(suite)
        if verify:
            self.verify(deep=True)
        self.dim = int(m["model"]["dimensions"])
        self.embeddings = np.load(self.path / "embeddings.npy", mmap_mode="r")
        if self.embeddings.shape != (m["rows"]["total"], self.dim) or self.embeddings.dtype != np.float32:
            raise CacheError(f"embeddings.npy has shape {self.embeddings.shape} {self.embeddings.dtype}; "
                             f"the manifest says ({m['rows']['total']}, {self.dim}) float32")
        self.index = faiss.read_index(str(self.path / "index.faiss"),
                                      faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        if self.index.ntotal != self.embeddings.shape[0] or self.index.d != self.dim:
            raise CacheError(f"index.faiss holds {self.index.ntotal}×{self.index.d}; expected "
                             f"{self.embeddings.shape[0]}×{self.dim}")
        self.texts: dict[str, int] = json.loads((self.path / "texts.json").read_text())
        self._keys: dict[str, list[str]] = json.loads((self.path / "keys.json").read_text())
        self.groups: dict[str, tuple[int, int]] = {g: (int(a), int(b)) for g, (a, b) in m["groups"].items()}
        self._selectors = {g: faiss.SearchParameters(sel=faiss.IDSelectorRange(a, b))
                           for g, (a, b) in self.groups.items()}
        self._encoder = None
        self._encoder_lock = threading.Lock()
        self.encoder_loads = 0
        self.encoder_calls = 0
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()  # texts encoded here, newest last
        self._pending: dict[str, list[asyncio.Future]] = {}
        self._draining = False
        # one thread calls the encoder (its own intra-op threads are BENCHPILOT_ENCODER_THREADS)
        self._encode_thread = ThreadPoolExecutor(1, thread_name_prefix="encoder")

    def check_suite(self, suite: str) -> None:
        """Refuse a cache built for another suite, or another version of it."""
        from .contract.fields import SpecError
        from .contract.registry import find_suite

        try:
            version = find_suite(suite).version
        except SpecError as exc:
            raise CacheError(str(exc)) from None
        m = self.manifest
        if (m.get("suite"), m.get("suite_version")) != (suite, version):
            raise CacheError(f"{self.path / 'manifest.json'}: built for suite {m.get('suite')!r} version "
                             f"{m.get('suite_version')!r}; this run is suite {suite!r} version {version!r}; "
                             f"rebuild the cache ('benchpilot cache build --suite {suite}')")

    # ------------------------------------------------------------------ verification
    def verify(self, *, deep: bool) -> None:
        """Sizes of every file; sha256 of every file but the model's (checked when it is loaded)."""
        for rel, meta in self.manifest.get("files", {}).items():
            p = self.path / rel
            if not p.is_file():
                raise CacheError(f"{p} is missing (listed in manifest.json)")
            size = p.stat().st_size
            if size != meta["bytes"]:
                raise CacheError(f"{p} has {size} bytes; manifest.json says {meta['bytes']}")
            if deep and not rel.startswith("model/") and sha256_file(p) != meta["sha256"]:
                raise CacheError(f"{p} does not match its sha256 in manifest.json: the cache is corrupt")

    def _verify_model(self, only: tuple[str, ...] | None = None) -> None:
        """sha256 of the model's files (``only`` these names: what the runner loads)."""
        model_dir = self.manifest["model"]["dir"]
        for rel, meta in self.manifest["files"].items():
            if not rel.startswith(model_dir + "/") or (only and rel[len(model_dir) + 1:] not in only):
                continue
            if sha256_file(self.path / rel) != meta["sha256"]:
                raise CacheError(f"{self.path / rel} does not match its sha256 in manifest.json")

    # ------------------------------------------------------------------ embeddings
    def _encode_many(self, texts: list[str]) -> np.ndarray:
        with self._encoder_lock:
            if self._encoder is None:
                self._verify_model(only=RUNTIME_FILES)
                self._encoder = OnnxEncoder(self.path / self.manifest["model"]["dir"])
                self.encoder_loads += 1
            self.encoder_calls += 1
            vec = self._encoder.encode(texts, batch_size=EMBED_BATCH)
        return np.asarray(vec, dtype=np.float32).reshape(len(texts), self.dim)

    def _encode(self, text: str) -> np.ndarray:
        return self._encode_many([text])

    def _cached(self, text: str) -> np.ndarray | None:
        row = self.texts.get(text_key(text))
        if row is not None:
            return np.asarray(self.embeddings[row:row + 1], dtype=np.float32)
        vec = self._lru.get(text)
        if vec is not None:
            self._lru.move_to_end(text)
        return vec

    def _remember(self, text: str, vec: np.ndarray) -> np.ndarray:
        self._lru[text] = vec
        while len(self._lru) > QUERY_LRU:
            self._lru.popitem(last=False)
        return vec

    async def embed_async(self, text: str) -> np.ndarray:
        """Like :meth:`embed`, for many concurrent cases: texts not in the cache are encoded together,
        in one batch per event-loop turn, in a worker thread (the loop keeps serving other cases)."""
        vec = self._cached(text)
        if vec is not None:
            return vec
        fut = asyncio.get_running_loop().create_future()
        self._pending.setdefault(text, []).append(fut)
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # let the cases of this turn add their texts
                batch = list(self._pending)[:EMBED_BATCH]
                waiters = [self._pending.pop(t) for t in batch]
                try:
                    vecs = await asyncio.get_running_loop().run_in_executor(self._encode_thread,
                                                                            self._encode_many, batch)
                except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                    for futs in waiters:
                        for f in futs:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                for text, futs, vec in zip(batch, waiters, vecs):
                    self._remember(text, vec[None, :])
                    for f in futs:
                        if not f.done():
                            f.set_result(vec[None, :])
        finally:
            self._draining = False

    def embed(self, text: str) -> np.ndarray:
        """The embedding of ``text`` as a (1, dim) array: from the cache if present, else encoded."""
        vec = self._cached(text)
        return vec if vec is not None else self._remember(text, self._encode(text))

    def keys(self, group: str) -> list[str]:
        return self._keys.get(group, [])

    def search_vec(self, group: str, vec: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` rows of ``group`` nearest to ``vec``, as (key, similarity)."""
        if group not in self.groups:
            return []
        start, stop = self.groups[group]
        k = min(k, stop - start)
        if k <= 0:
            return []
        sims, ids = self.index.search(np.ascontiguousarray(vec, dtype=np.float32), k, params=self._selectors[group])
        keys = self._keys.get(group)
        return [((keys[i - start] if keys else str(i - start)), float(d))
                for i, d in zip(ids[0], sims[0]) if start <= i < stop]

    def search(self, group: str, text: str, k: int) -> list[str]:
        """The keys of the ``k`` rows of ``group`` most similar to ``text``."""
        return [key for key, _ in self.search_vec(group, self.embed(text), k)]

    @property
    def encoder_loaded(self) -> bool:
        return self._encoder is not None

    def touch(self) -> float:
        """Read every page once (what a busy shard ends up doing); returns a checksum-like sum."""
        total = 0.0
        for start in range(0, self.embeddings.shape[0], 65536):
            total += float(self.embeddings[start:start + 65536].sum(dtype=np.float64))
        q = np.ascontiguousarray(self.embeddings[:1])
        self.index.search(q, 1)
        return total


_OPEN: dict[str, Cache] = {}
_LOCK = threading.Lock()


def open_cache(path: str | Path, *, verify: bool = True, suite: str | None = None) -> Cache:
    """The process's one ``Cache`` for ``path`` (opened and verified on first use); with ``suite``,
    a cache built for another suite or version is refused."""
    key = str(Path(path).resolve())
    with _LOCK:
        cache = _OPEN.get(key)
        if cache is None:
            cache = _OPEN[key] = Cache(key, verify=verify, suite=suite)
        elif suite is not None:
            cache.check_suite(suite)
        return cache
