"""What a run session does for answers: the index of earlier answers (reuse on), the run's own spec
kept beside its parts (``_run.json``: what ``benchpilot rescore`` runs again), and the lines that say
what reuse did."""

from __future__ import annotations

import json
import logging

from ..contract.layout import RUN_SPEC
from ..contract.types import RunSpec
from ..results.store import write_whole
from .client import Answers
from .index import load_index

log = logging.getLogger("benchpilot.answers")


def open_index(answers: Answers, spec: RunSpec, fs, run_dir: str) -> None:
    """With reuse on, every answer of the named sources and of the run's own folder, before any case runs."""
    if spec.reuse.enabled:
        answers.index = load_index(spec.suite, spec.reuse.sources, own=fs.unstrip_protocol(run_dir))


def keep_spec(fs, run_dir: str, spec: RunSpec) -> None:
    """The resolved spec beside the parts (once; the same content whoever writes it). Not fatal."""
    path = f"{run_dir}/{RUN_SPEC}"
    try:
        if not fs.exists(path):
            write_whole(fs, path, json.dumps(spec.to_resolved(), indent=1, sort_keys=True).encode())
    except Exception as exc:  # noqa: BLE001 - the run goes on; a rescore of it then needs --manifest
        log.warning("the run's spec could not be written beside the results", extra={"path": path, "error": str(exc)})


def summary_lines(answers: Answers) -> list[str]:
    """What reuse did in this process, for the run's closing lines."""
    out = []
    if answers.index is not None:
        c = answers.index.counts
        out.append(f"reuse: {answers.hits} answers taken from earlier results, {answers.misses} requests not found "
                   f"({c['answers']} answers in {c['parts']} parts of {len(answers.index.sources)} sources)")
        if c["unparsable"]:
            out.append(f"reuse: {c['unparsable']} transcripts could not be read; their answers were not reused")
    for label, before, now in answers.drift[:5]:
        out.append(f"warning: model {label} changed its served model during the run: {before[0]} "
                   f"(fingerprint {before[1]}) -> {now[0]} (fingerprint {now[1]})")
    return out
