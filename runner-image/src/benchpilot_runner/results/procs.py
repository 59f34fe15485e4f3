"""Whether the process a writer's lease names still runs on this host, read from ``/proc``.

``kill(pid, 0)`` is not enough: it succeeds on a zombie (a killed writer its parent has not reaped
yet: in containers PID 1 often never reaps) and on an unrelated process that was given the same pid
later. So a lease records its writer's identity — pid, the process's start time (clock ticks since
boot, field 22 of ``/proc/<pid>/stat``) and the boot id — and the writer is alive only if a process
with that pid and that start time exists, is not a zombie, and the machine has not rebooted since.
Without ``/proc`` (not Linux) nothing can be told (``None``), and the caller falls back to ``kill``.
"""

from __future__ import annotations

import os

PROC = "/proc"
DEAD_STATES = {"Z", "X", "x"}  # zombie, dead


def _stat_fields(pid: int, proc: str = PROC) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None: no such process."""
    try:
        with open(f"{proc}/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # "pid (comm) state ppid ...": the name may hold spaces and parentheses; it ends at the last ")"
    return text[text.rfind(")") + 2:].split()


def boot_id(proc: str = PROC) -> str | None:
    try:
        with open(f"{proc}/sys/kernel/random/boot_id", encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def identity(pid: int | None = None, proc: str = PROC) -> dict:
    """This process's (or ``pid``'s) identity for a lease: pid, start time and boot id (None where unknown)."""
    pid = os.getpid() if pid is None else pid
    fields = _stat_fields(pid, proc) if os.path.isdir(proc) else None
    return {"pid": pid, "pid_start": int(fields[19]) if fields and len(fields) > 19 else None,
            "boot": boot_id(proc)}


def alive(pid: int, pid_start: int | None, boot: str | None, proc: str = PROC) -> bool | None:
    """Whether the process a lease names runs: True, False, or None when ``/proc`` cannot say.

    A lease without a start time (written before they were recorded) is judged by pid and state only."""
    if not os.path.isdir(f"{proc}/self"):
        return None
    current_boot = boot_id(proc)
    if boot and current_boot and boot != current_boot:
        return False  # the machine rebooted since: every process of then is gone
    fields = _stat_fields(pid, proc)
    if fields is None or not fields or fields[0] in DEAD_STATES:
        return False
    if pid_start is not None and len(fields) > 19 and int(fields[19]) != int(pid_start):
        return False  # the pid now belongs to another process
    return True


def gone_from_here(lease: dict, host: str) -> bool:
    """A lease (``host``, ``pid``, ``pid_start``, ``boot``) of a writer on this host that no longer runs:
    killed (a zombie included), or its pid given to another process since. Leases of other hosts: False."""
    if lease.get("host") != host:
        return False
    try:
        pid = int(lease.get("pid"))
        verdict = alive(pid, lease.get("pid_start"), lease.get("boot"))
        if verdict is not None:
            return not verdict
        os.kill(pid, 0)  # no /proc: the pid alone
    except ProcessLookupError:
        return True
    except (PermissionError, TypeError, ValueError):
        return False
    return False
