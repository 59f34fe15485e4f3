"""The shared read-only cache, opened once per process, memory-mapped, verified.

Every concurrent case — and every process of a pod — uses the same pages: the embeddings are a
``numpy.load(mmap_mode='r')`` view and the FAISS index is read with ``IO_FLAG_MMAP_IFC``, so
nothing is copied per worker. The encoder is loaded lazily, only when a text whose embedding is
not in the cache must be embedded, and query embeddings are kept in a bounded LRU.
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import numpy as np

from .cache import FORMAT, load_encoder, sha256_file, text_key
from .spec import SUITE_VERSION
from .suites.workflow.registry import TOOLS

QUERY_LRU = 4096


class CacheError(Exception):
    """The cache folder is missing, corrupt or made for another suite version."""


class Cache:
    def __init__(self, path: str | Path, *, verify: bool = True):
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
            raise CacheError(f"{mf}: cache format {m.get('format')!r}, this runner reads format {FORMAT}")
        if m.get("suite_version") != SUITE_VERSION:
            raise CacheError(f"{mf}: built for suite {m.get('suite_version')!r}, this runner runs "
                             f"{SUITE_VERSION!r}; rebuild the cache")
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
        self.n_tools = int(m["rows"]["tools"])
        self.texts: dict[str, int] = json.loads((self.path / "texts.json").read_text())
        self._tool_names = [t["name"] for t in json.loads((self.path / "tools.json").read_text())]
        if self._tool_names != [t.name for t in TOOLS]:
            raise CacheError("tools.json does not match this runner's tool registry; rebuild the cache")
        self._tool_selector = faiss.SearchParameters(sel=faiss.IDSelectorRange(0, self.n_tools))
        self._encoder = None
        self._encoder_lock = threading.Lock()
        self.encoder_loads = 0
        self._embed_query = functools.lru_cache(maxsize=QUERY_LRU)(self._encode)

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

    def _verify_model(self) -> None:
        for rel, meta in self.manifest["files"].items():
            if rel.startswith("model/") and sha256_file(self.path / rel) != meta["sha256"]:
                raise CacheError(f"{self.path / rel} does not match its sha256 in manifest.json")

    # ------------------------------------------------------------------ embeddings
    def _encode(self, text: str) -> np.ndarray:
        with self._encoder_lock:
            if self._encoder is None:
                self._verify_model()
                self._encoder = load_encoder(self.path / self.manifest["model"]["dir"])
                self.encoder_loads += 1
            vec = self._encoder.encode([text], normalize_embeddings=True, convert_to_numpy=True,
                                       show_progress_bar=False)
        return np.asarray(vec, dtype=np.float32)

    def embed(self, text: str) -> np.ndarray:
        """The embedding of ``text`` as a (1, dim) array: from the cache if present, else encoded."""
        row = self.texts.get(text_key(text))
        if row is not None:
            return np.asarray(self.embeddings[row:row + 1], dtype=np.float32)
        return self._embed_query(text)

    @property
    def encoder_loaded(self) -> bool:
        return self._encoder is not None

    def retriever(self) -> "CacheRetriever":
        return CacheRetriever(self)

    def touch(self) -> float:
        """Read every page once (what a busy shard ends up doing); returns a checksum-like sum."""
        total = 0.0
        for start in range(0, self.embeddings.shape[0], 65536):
            total += float(self.embeddings[start:start + 65536].sum(dtype=np.float64))
        q = np.ascontiguousarray(self.embeddings[:1])
        self.index.search(q, 1)
        return total


class CacheRetriever:
    """Tools most similar to a text, by FAISS inner product over the tool rows only."""

    def __init__(self, cache: Cache):
        self.cache = cache

    def retrieve(self, text: str, k: int) -> list[str]:
        q = self.cache.embed(text)
        k = min(k, self.cache.n_tools)
        _, ids = self.cache.index.search(q, k, params=self.cache._tool_selector)
        return [self.cache._tool_names[i] for i in ids[0] if 0 <= i < self.cache.n_tools]


_OPEN: dict[str, Cache] = {}
_LOCK = threading.Lock()


def open_cache(path: str | Path, *, verify: bool = True) -> Cache:
    """The process's one ``Cache`` for ``path`` (opened and verified on first use)."""
    key = str(Path(path).resolve())
    with _LOCK:
        cache = _OPEN.get(key)
        if cache is None:
            cache = _OPEN[key] = Cache(key, verify=verify)
        return cache
