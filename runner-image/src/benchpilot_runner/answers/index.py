"""The answers earlier results hold, read once when a run starts: answer key -> the kept response.

Sources are this run's own folder (a rerun of a failed case reuses the answers it already got) and
the result URIs the spec or ``--reuse-from`` names. Each is read as the report reads results:
every part under the URI, whoever wrote it. Parts are immutable and every writer writes its own
names, so answers added by many pods at once are all here, with no lock and no shared index file
to lose them. A source that cannot be read, holds no parts, or holds another suite's results is
refused (:class:`ReuseError`, exit 2); a transcript that cannot be parsed is counted, not fatal.
"""

from __future__ import annotations

import json
import logging
from array import array
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..contract.outcomes import ConfigError
from ..redact import scrub
from ..results.rows import list_parts
from ..results.store import open_uri
from . import transcript as T

log = logging.getLogger("benchpilot.answers")
BATCH_ROWS = 256


class ReuseError(ConfigError):
    """A reuse source that cannot be used: unreadable, empty, or another suite's results."""


class AnswerIndex:
    """Answer key (64 bits) -> the response as JSON text, parsed anew for each hit (no answer object is
    shared). Built without a Python object per answer: keys and offsets in arrays, each distinct text
    once in one buffer (most answers of a sweep repeat others: "Done."), then sorted for a binary
    search. Objects kept per answer would sit among the transcripts' parsed temporaries and hold their
    memory after loading (fragmentation: ~4 MiB a thousand cases)."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()  # parts, rows, transcripts, answers, duplicates, unparsable
        self.sources: list[str] = []
        self._keys, self._offsets, self._sizes = array("Q"), array("Q"), array("I")
        self._blob = bytearray()
        self._texts: dict[bytes, int] | None = {}  # while loading: text -> its offset in the blob
        self._sorted: tuple | None = None

    def add_transcript(self, text: str) -> None:
        """Every complete answer of one row's transcript (an unreadable one is counted and skipped)."""
        self.counts["transcripts"] += 1
        try:
            found = list(T.answers(T.parse(text)))
        except T.TranscriptError:
            self.counts["unparsable"] += 1
            return
        for key, response in found:
            data = json.dumps(response, separators=(",", ":")).encode()
            at = self._texts.get(data)
            if at is None:
                at = self._texts[data] = len(self._blob)
                self._blob += data
            self._keys.append(int(key, 16))
            self._offsets.append(at)
            self._sizes.append(len(data))
        self._sorted = None

    def loaded(self) -> None:
        """Loading is over: sort by key (the first answer of a key wins), drop the loading table."""
        keys = np.frombuffer(self._keys, dtype=np.uint64) if len(self._keys) else np.zeros(0, np.uint64)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        self.counts["duplicates"] = int(len(keys) - first.sum())
        pick = order[first]
        self._sorted = (keys[first], np.frombuffer(self._offsets, np.uint64)[pick] if len(pick) else pick,
                        np.frombuffer(self._sizes, np.uint32)[pick] if len(pick) else pick)
        self._texts = {}

    def get(self, key: str) -> dict | None:
        if self._sorted is None:
            self.loaded()
        keys, offsets, sizes = self._sorted
        k = np.uint64(int(key, 16))
        i = int(np.searchsorted(keys, k))
        if i == len(keys) or keys[i] != k:
            return None
        start = int(offsets[i])
        return json.loads(bytes(self._blob[start:start + int(sizes[i])]))

    def __len__(self) -> int:
        if self._sorted is None:
            self.loaded()
        return len(self._sorted[0])


def source_parts(uri: str, *, must_exist: bool) -> tuple[object, list[str]]:
    try:
        fs, root = open_uri(uri)
        parts = list_parts(fs, root, recursive=True) if fs.exists(root) else []
    except ConfigError as exc:
        raise ReuseError(f"reuse source {uri}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to list means unreadable; say which
        raise ReuseError(f"reuse source {uri} is not readable: {type(exc).__name__}: {scrub(str(exc))[:200]}") from None
    if must_exist and not parts:
        raise ReuseError(f"reuse source {uri} holds no result parts (give a run folder or results root)")
    return fs, parts


def _batches(fs, part: str):
    """The part's (suite, transcript) columns, a few hundred rows at a time (transcripts are large: a
    whole part's, decompressed and as Python text at once, would be most of a run's memory)."""
    with fs.open(part, "rb") as fh:
        pf = pq.ParquetFile(fh)
        have = set(pf.schema_arrow.names)
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[c for c in ("suite", "transcript") if c in have],
                                     use_threads=False):
            yield batch


def _add_part(index: AnswerIndex, fs, part: str, uri: str, suite: str) -> None:
    try:
        for batch in _batches(fs, part):
            other = {s for s in pc.unique(batch.column("suite")).to_pylist() if s} - {suite}
            if other:
                raise ReuseError(f"reuse source {uri} holds results of suite {sorted(other)[0]!r}; this run's suite "
                                 f"is {suite!r} (answers are reused only within one suite)")
            index.counts["rows"] += batch.num_rows
            if "transcript" in batch.schema.names:
                for text in batch.column("transcript").to_pylist():
                    if text:
                        index.add_transcript(text)
    except ReuseError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ReuseError(f"reuse source {uri}: part {part} is not readable: "
                         f"{type(exc).__name__}: {scrub(str(exc))[:200]}") from None
    index.counts["parts"] += 1


def add_source(index: AnswerIndex, uri: str, suite: str, *, must_exist: bool = True) -> None:
    """Every answer under ``uri``; refused when it is unreadable or holds another suite's results."""
    fs, parts = source_parts(uri, must_exist=must_exist)
    for part in parts:
        _add_part(index, fs, part, uri, suite)
    index.sources.append(uri)


def load_index(suite: str, sources: tuple[str, ...], own: str | None = None) -> AnswerIndex:
    """The answers of ``sources`` (each must hold parts of ``suite``) and of the run's own folder ``own``."""
    index = AnswerIndex()
    # read with the system allocator, one thread: Arrow's default pool (mimalloc) keeps what decompressing
    # every transcript of a sweep once took (~15 KiB a case measured), for the rest of the run
    pool = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        if own is not None:
            add_source(index, own, suite, must_exist=False)
        for uri in sources:
            add_source(index, uri, suite)
    finally:
        pa.set_memory_pool(pool)
    index.loaded()
    index.counts["answers"] = len(index)
    log.info("answers for reuse loaded", extra={"sources": index.sources, **dict(index.counts)})
    if index.counts["unparsable"]:
        log.warning("some transcripts could not be read; their answers are not reused",
                    extra={"unparsable": index.counts["unparsable"]})
    return index
