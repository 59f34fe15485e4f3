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
from collections import Counter
from dataclasses import dataclass, field

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


@dataclass
class AnswerIndex:
    """Answer key (its 64 bits as an int) -> the response as JSON text (parsed anew for each hit: no answer
    object is shared). Equal texts are kept once: most answers of a sweep repeat others ("Done.")."""

    answers: dict[int, str] = field(default_factory=dict)
    _texts: dict[str, str] = field(default_factory=dict)  # while loading: each distinct text once
    counts: Counter = field(default_factory=Counter)  # parts, rows, transcripts, answers, duplicates, unparsable
    sources: list[str] = field(default_factory=list)

    def get(self, key: str) -> dict | None:
        text = self.answers.get(int(key, 16))
        return None if text is None else json.loads(text)

    def __len__(self) -> int:
        return len(self.answers)

    def add_transcript(self, text: str) -> None:
        """Every complete answer of one row's transcript (an unreadable one is counted and skipped)."""
        self.counts["transcripts"] += 1
        try:
            found = list(T.answers(T.parse(text)))
        except T.TranscriptError:
            self.counts["unparsable"] += 1
            return
        for key, response in found:
            number = int(key, 16)
            if number in self.answers:
                self.counts["duplicates"] += 1
            else:
                text = json.dumps(response, separators=(",", ":"))
                self.answers[number] = self._texts.setdefault(text, text)

    def loaded(self) -> None:
        """Loading is over: the texts stay shared by their keys, the table that found them goes."""
        self._texts = {}


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
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[c for c in ("suite", "transcript") if c in have]):
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
    if own is not None:
        add_source(index, own, suite, must_exist=False)
    for uri in sources:
        add_source(index, uri, suite)
    index.counts["answers"] = len(index)
    index.loaded()
    pa.default_memory_pool().release_unused()  # the parts' buffers: back to the system before cases run
    log.info("answers for reuse loaded", extra={"sources": index.sources, **dict(index.counts)})
    if index.counts["unparsable"]:
        log.warning("some transcripts could not be read; their answers are not reused",
                    extra={"unparsable": index.counts["unparsable"]})
    return index
