"""Cases and shards: the one expansion order both sides use, case ids, and which shard holds which case.

Pure. A shard's cases are computed from their positions (:func:`case_at`), never expanded: the first
case of a 750,000-case, 16-shard run starts at once. Shard ``i`` of ``N`` holds the positions
``p % N == i`` across the whole matrix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterator

from .types import Matrix


@dataclass(frozen=True, slots=True)
class Case:
    model: str
    prompt_type: str
    difficulty: str
    task_type: str
    instance: int
    case_id: str

    @property
    def seed(self) -> int:
        return int(self.case_id[:12], 16)


def case_id(model: str, prompt_type: str, difficulty: str, task_type: str, instance: int, suite_version: str) -> str:
    """Stable id of one case: a hash of its fields and the suite version (not of the run)."""
    key = json.dumps([suite_version, model, prompt_type, difficulty, task_type, int(instance)],
                     separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def case_at(matrix: Matrix, position: int) -> Case:
    """The case at ``position`` of the expansion order, computed directly (no expansion)."""
    rest, instance = divmod(position, matrix.instances)
    rest, t = divmod(rest, len(matrix.task_types))
    rest, d = divmod(rest, len(matrix.difficulties))
    m, p = divmod(rest, len(matrix.prompt_types))
    model, prompt, diff, task = matrix.models[m], matrix.prompt_types[p], matrix.difficulties[d], matrix.task_types[t]
    return Case(model, prompt, diff, task, instance, case_id(model, prompt, diff, task, instance, matrix.suite_version))


def iter_cases(matrix: Matrix) -> Iterator[Case]:
    """Every case of the matrix in the one deterministic order both sides use:
    model, then prompt type, difficulty, task type, instance (the innermost)."""
    for p in range(matrix.total):
        yield case_at(matrix, p)


def expand(matrix: Matrix) -> list[Case]:
    return list(iter_cases(matrix))


def shard_of(position: int, shards: int) -> int:
    return position % shards


def iter_shard_cases(matrix: Matrix, shard: int, shards: int) -> Iterator[Case]:
    """The cases of shard ``shard`` of ``shards``, lazily: positions p with p % shards == shard."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards} does not exist; shards are 0..{shards - 1}")
    for p in range(shard, matrix.total, shards):
        yield case_at(matrix, p)


def shard_cases(matrix: Matrix, shard: int, shards: int) -> list[Case]:
    return list(iter_shard_cases(matrix, shard, shards))


def shard_sizes(total: int, shards: int) -> list[int]:
    """How many cases each shard holds, without expanding the matrix."""
    base, extra = divmod(total, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]
