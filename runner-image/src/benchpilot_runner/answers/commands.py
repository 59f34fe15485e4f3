"""``benchpilot rescore`` and ``benchpilot cache explain``.

Rescore runs the source's own spec again (its ``_run.json``, or ``--manifest``) into ``--output`` with
every answer taken from the source's transcripts (replay): the suite's current code judges them and
no provider is ever called — a request the transcripts lack is an error row saying so, and the HTTP
transport refuses anything that would get past that.

Explain prints each request of a case, what its key is made of, and the parts holding an answer
under that key: the key can be checked by hand (sha256 of the canonical JSON, :mod:`.keys`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace

from ..contract.parse import with_overrides
from ..contract.resolved import from_resolved
from ..contract.types import Reuse, RunSpec
from ..llm.base import LLMConnectionError
from . import keys, transcript as T

# the command line imports this module to add its parsers: pyarrow and the results are imported when used


def add_parsers(sub, cache_sub) -> None:
    rescore = sub.add_parser("rescore", help="score a run's kept answers again with the current suite code "
                                             "(no model is called)")
    rescore.add_argument("source", help="the run's results: its run folder (or a root holding one run)")
    rescore.add_argument("--output", required=True, help="where the rescored results go (a new results URI)")
    rescore.add_argument("--manifest", help="the run's manifest, when the source has no _run.json (results of 0.2)")
    rescore.add_argument("--no-progress", action="store_true", help="no progress bar or summary table")
    explain = cache_sub.add_parser("explain", help="print a case's requests, their reuse keys and the parts "
                                                   "holding their answers")
    explain.add_argument("source", help="results URI holding the case")
    explain.add_argument("--case", required=True, help="the case id")
    explain.add_argument("--format", choices=("text", "json"), default="text")


async def _refuse(url: str, headers: dict, payload: dict):
    raise LLMConnectionError("a rescore never calls a provider")


def source_spec(uri: str) -> RunSpec:
    """The resolved spec a run kept beside its parts (exactly one run under ``uri``)."""
    from ..results.store import open_uri
    from .index import ReuseError, source_parts
    from ..contract.layout import RUN_SPEC

    source_parts(uri, must_exist=True)  # an unreadable or empty source is refused as for reuse
    fs, root = open_uri(uri)
    found = sorted(p for p in fs.find(root) if p.rsplit("/", 1)[-1] == RUN_SPEC)
    if not found:
        raise ReuseError(f"rescore source {uri} has no {RUN_SPEC} (results written before 0.3?); give --manifest")
    docs = {fs.cat_file(p) for p in found}
    if len(docs) > 1:
        raise ReuseError(f"rescore source {uri} holds {len(docs)} different runs ({', '.join(found[:3])}); "
                         "give one run folder")
    return from_resolved(json.loads(docs.pop()))


def rescore_spec(spec: RunSpec, source: str, output: str) -> RunSpec:
    """The spec to replay: results to ``output``, answers from ``source`` only, no key needed."""
    spec = with_overrides(spec, output=output)
    endpoints = tuple(replace(e, api_key_secret=None, api_key_env=None) for e in spec.endpoints)
    return replace(spec, endpoints=endpoints, reuse=Reuse(enabled=True, sources=(source,)))


def cmd_rescore(args) -> int:
    from ..local import run_local
    from ..manifest import load_manifest
    from ..suites.base import Retrieval

    spec = load_manifest(args.manifest) if args.manifest else source_spec(args.source)
    spec = rescore_spec(spec, args.source, args.output)
    retrieval = Retrieval()
    if spec.cache_path:
        from ..resources import open_cache

        retrieval = Retrieval(open_cache(spec.cache_path, suite=spec.suite))
    return asyncio.run(run_local(spec, show_progress=not args.no_progress, retrieval=retrieval, transport=_refuse,
                                 replay=True))


def _entry_doc(doc: dict, entry: dict, body: dict, digest: str, occurrence: int, held: dict[str, list[str]]) -> dict:
    key = keys.answer_key(digest, doc["instance"], occurrence)
    response = entry.get("response") or {}
    return {"key": key, "key_version": keys.KEY_VERSION, "endpoint": doc["endpoint"], "model": body.get("model"),
            "instance": doc["instance"], "occurrence": occurrence, "request_digest": digest,
            "request_material": keys.canonical(keys.request_material(doc["endpoint"], body)).decode(),
            "messages": len(body.get("messages") or []), "tools": len(body.get("tools") or []),
            "params": {k: v for k, v in keys.keyed_body(body).items() if k not in ("messages", "tools")},
            "reused": bool(entry.get("reused")), "error": entry.get("error"),
            "finish_reason": response.get("finish_reason"), "served_model": response.get("served_model"),
            "usage": response.get("usage"), "held_by": held.get(key, [])}


def _case_rows(fs, parts: list[str], case_id: str) -> list[dict]:
    import pyarrow.compute as pc

    from ..results.rows import read_part

    rows = []
    for part in parts:
        table = read_part(fs, part, ("case_id", "run", "attempt", "transcript"))
        rows += [{**r, "part": part} for r in table.filter(pc.equal(table.column("case_id"), case_id)).to_pylist()]
    return rows


def _holders(fs, parts: list[str], wanted: set[str]) -> dict[str, list[str]]:
    """key -> the parts holding a complete answer under it (every transcript's keys, computed as reuse does)."""
    from ..results.rows import read_part

    held: dict[str, list[str]] = {}
    for part in parts:
        for text in read_part(fs, part, ("transcript",)).column("transcript").to_pylist():
            try:
                found = {k for k, _ in T.answers(T.parse(text))} if text else set()
            except T.TranscriptError:
                continue
            for key in found & wanted:
                if part not in held.setdefault(key, []):
                    held[key].append(part)
    return held


def explain(uri: str, case_id: str) -> list[dict]:
    """Every request of every row of ``case_id`` under ``uri``, with its key and the parts holding it."""
    from .index import ReuseError, source_parts

    fs, parts = source_parts(uri, must_exist=True)
    rows = _case_rows(fs, parts, case_id)
    if not rows:
        raise ReuseError(f"no row of case {case_id} under {uri}")
    docs = [T.parse(r["transcript"]) if r["transcript"] else {"entries": [], "endpoint": "", "instance": 0}
            for r in rows]
    entries = [list(T.keyed(d)) for d in docs]
    wanted = {keys.answer_key(digest, d["instance"], occurrence)
              for d, found in zip(docs, entries) for _, _, digest, occurrence in found}
    held = _holders(fs, parts, wanted)
    return [{"case_id": case_id, "run": row["run"], "attempt": row["attempt"], "part": row["part"],
             "truncated": doc.get("truncated"),
             "requests": [_entry_doc(doc, *one, held) for one in found]}
            for row, doc, found in zip(rows, docs, entries)]


def cmd_explain(args) -> int:
    found = explain(args.source, args.case)
    if args.format == "json":
        print(json.dumps(found, indent=1))
        return 0
    for row in found:
        print(f"case {row['case_id']} (run {row['run']}, attempt {row['attempt']}) in {row['part']}")
        for i, r in enumerate(row["requests"], 1):
            print(f"  request {i}: key {r['key']}")
            print(f"    = first 16 hex of sha256('{r['key_version']}\\n{r['request_digest']}\\n{r['instance']}\\n"
                  f"{r['occurrence']}')  (instance, occurrence of this request in the case)")
            print(f"    request digest = sha256 of the canonical JSON of endpoint {r['endpoint']}, model {r['model']}, "
                  f"{r['messages']} messages, {r['tools']} tools, params {json.dumps(r['params'], sort_keys=True)}"
                  " (--format json prints it whole)")
            answer = f"error {r['error']['type']}" if r["error"] else \
                f"{r['finish_reason']} from {r['served_model']}, usage {r['usage']}"
            print(f"    answer: {answer}{' (reused)' if r['reused'] else ''}; held by {len(r['held_by'])} parts: "
                  + ", ".join(r["held_by"][:5]))
        if row["truncated"]:
            print(f"  transcript truncated: {row['truncated']}")
    sys.stdout.flush()
    return 0
