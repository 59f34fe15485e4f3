"""What the status policies read and write: a shard as observed, the decisions of a pass, the actions."""

from __future__ import annotations

from dataclasses import dataclass, field

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")
MAX_FAILED_LISTED = 20
UNFINISHED = ("running", "pending", "suspended")  # shard states that hold a Job still to finish
FINISHED = ("succeeded", "failed", "budget")


@dataclass
class ShardObs:
    index: int
    job: dict | None = None
    pods: list[dict] = field(default_factory=list)
    done: int | None = None  # cases with a row, scraped from the running pod
    failed_cases: int | None = None


@dataclass(frozen=True)
class CreateJob:
    index: int
    request_bytes: int
    oom_retries: int
    replace: bool = False  # delete the existing Job first (its pod template is immutable)
    share: float | None = None  # the shard's fraction of the run's endpoint limits (None: no endpoint)


@dataclass
class Actions:
    create: list[CreateJob] = field(default_factory=list)
    suspend: list[int] = field(default_factory=list)
    resume: list[int] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    retries: list[str] = field(default_factory=list)  # reasons, one per retry started now
    urgent_status: dict | None = None  # written before acting (retry bookkeeping)


@dataclass
class Decisions:
    """What the per-shard pass decided: each shard's state, failures, and the retry bookkeeping."""

    states: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # (state, reason, message)
    failed: dict[int, tuple[str, str]] = field(default_factory=dict)
    retries: dict[str, dict] = field(default_factory=dict)  # status.shardRetries, by shard index

    def record(self, key: str, rec: dict, acts: Actions) -> None:
        """Retry bookkeeping for one shard, written before any action (a crash in between repeats nothing)."""
        self.retries[key] = rec
        acts.urgent_status = {"shardRetries": self.retries}
