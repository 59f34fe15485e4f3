"""Where results live: the one definition of the results layout (DESIGN.md, with writer ids). Pure.

    <uri>/<namespace>/<run>/<run-uid>/shard-00003/part-<attempt>-<seq>-<writer>.parquet
    <uri>/<namespace>/<run>/<run-uid>/shard-00003/_SUCCESS
    <uri>/<namespace>/<run>/<run-uid>/_writers/<writer>.json      # a live writer's lease
    <uri>/<namespace>/<run>/<run-uid>/_SUCCESS
    <uri>/<namespace>/<run>/<run-uid>/_run.json                    # the run's resolved spec (rescore runs it)
"""

from __future__ import annotations

import re

from .outcomes import ConfigError

SUCCESS = "_SUCCESS"  # a shard's (and the run's) commit manifest, written last
WRITERS = "_writers"  # the folder of writer leases
SHARD_PREFIX = "shard-"
RUN_SPEC = "_run.json"  # the run's resolved spec beside its parts, the same whoever writes it ("_": Arrow skips it)
PART_RE = re.compile(r"^part-(\d+)-(\d+)(?:-([0-9a-z]+))?\.parquet$")  # older parts have no writer id


class OutputError(ConfigError):
    """The output location cannot be used (bad URI, no permission, unreachable)."""


def run_path(root: str, namespace: str, run: str, uid: str) -> str:
    """A run's folder under the output root."""
    for part in (namespace, run, uid):  # the spec parser checks these; never let one escape the root
        if not part or "/" in part or part in (".", ".."):
            raise OutputError(f"{part!r} cannot be a folder name under the output")
    return f"{root.rstrip('/')}/{namespace}/{run}/{uid}"


def results_uri(output_uri: str, namespace: str, run: str, uid: str) -> str:
    """Where a run's results are, as the operator shows it in ``status.results.uri``."""
    return run_path(output_uri, namespace, run, uid) + "/"


def shard_name(shard: int) -> str:
    return f"{SHARD_PREFIX}{shard:05d}"


def part_name(attempt: int, seq: int, writer: str) -> str:
    return f"part-{attempt:05d}-{seq:05d}-{writer}.parquet"


def is_part(name: str) -> bool:
    return bool(PART_RE.match(name.rsplit("/", 1)[-1]))


def part_attempt(name: str) -> int:
    return int(PART_RE.match(name.rsplit("/", 1)[-1]).group(1))


def lease_path(run_dir: str, writer: str) -> str:
    return f"{run_dir}/{WRITERS}/{writer}.json"


def uid_of_part(part: str) -> str:
    """The run uid folder a part lies in (``.../<uid>/shard-N/part-...``)."""
    bits = part.rstrip("/").split("/")
    return bits[-3] if len(bits) >= 3 else ""
