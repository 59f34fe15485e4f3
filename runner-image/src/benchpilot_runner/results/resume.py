"""What the parts already hold: the cases with a final outcome, the attempts of the others, and the spend.

A case is done when a part holds a *final* row for it (success, partial, failure). Rows with
``error``/``timeout`` are the infrastructure's: the case runs again, with the next attempt number.
Only ids are kept (a set and a dict), never rows: resuming after a million rows stays small.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from ..contract.layout import part_attempt
from ..contract.outcomes import FINAL_STATUSES
from .rows import list_parts, read_part

log = logging.getLogger("benchpilot.results")
_FINAL = pa.array(list(FINAL_STATUSES))
STATE_COLUMNS = ("case_id", "status", "attempt", "cost_usd", "prompt_tokens", "completion_tokens")


@dataclass
class ResumeState:
    done: set[str] = field(default_factory=set)
    tries: dict[str, int] = field(default_factory=dict)  # case_id -> attempts so far (error/timeout rows)
    parts: list[str] = field(default_factory=list)
    max_attempt: int = 0
    unreadable: list[str] = field(default_factory=list)
    spent_usd: float = 0.0  # what every row so far cost (error rows too: their tokens were used)
    spent_tokens: int = 0

    def add_table(self, table: pa.Table) -> None:
        self.spent_usd += float(pc.sum(table.column("cost_usd")).as_py() or 0.0)
        self.spent_tokens += int(pc.sum(table.column("prompt_tokens")).as_py() or 0) \
            + int(pc.sum(table.column("completion_tokens")).as_py() or 0)
        final = pc.is_in(table.column("status"), value_set=_FINAL)
        self.done.update(table.column("case_id").filter(final).to_pylist())
        rest = table.filter(pc.invert(final))
        if rest.num_rows:
            attempts = rest.column("attempt").fill_null(1).to_pylist()
            for cid, a in zip(rest.column("case_id").to_pylist(), attempts):
                if self.tries.get(cid, 0) < a:
                    self.tries[cid] = a

    def next_attempt(self, case_id: str) -> int:
        return self.tries.get(case_id, 0) + 1


def read_state(fs: fsspec.AbstractFileSystem, folder: str, *, recursive: bool) -> ResumeState:
    """The resume state of a shard folder, or of a whole run (``recursive``: whatever shard wrote them)."""
    state = ResumeState()
    for part in list_parts(fs, folder, recursive=recursive):
        try:
            table = read_part(fs, part, STATE_COLUMNS)
        except Exception as exc:  # noqa: BLE001 - an unreadable part: its cases run again
            state.unreadable.append(part)
            log.warning("unreadable part skipped; its cases will run again",
                        extra={"part": part, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        state.parts.append(part)
        state.max_attempt = max(state.max_attempt, part_attempt(part))
        state.add_table(table)
    return state
