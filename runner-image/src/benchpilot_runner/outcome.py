"""PURE: the exit code of a run or a shard, and the lines that say why (README: exit codes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .contract.outcomes import ExitCode

if TYPE_CHECKING:
    from .shard import ShardResult


def marker_line(results: list[ShardResult], run_marker_error: str | None) -> str | None:
    """One line for markers not written although every row was: the rows are safe, a rerun writes them."""
    failed = [r for r in results if r.marker_error]
    if not failed and not run_marker_error:
        return None
    what = (f"the _SUCCESS marker of shard{'s' if len(failed) > 1 else ''} {', '.join(str(r.shard) for r in failed)}"
            if failed else "the run's _SUCCESS marker")
    why = failed[-1].marker_error if failed else run_marker_error
    return (f"every result row is written, but {what} could not be written {why}; the rows are safe: "
            "run the same command again to write it")


def outcome(results: list[ShardResult], *, interrupted: str | None, auth_refused: bool,
            unavailable: dict[str, tuple[str, str]] | None = None,
            run_marker_error: str | None = None) -> tuple[int, list[str]]:
    """The exit code of a run or shard and the lines that say why (README: exit codes).

    ``unavailable``: endpoints taken out of the run (name -> (state, reason)), said even when every
    one of their cases had started before (so none was left unrun). ``run_marker_error``: why the
    run's ``_SUCCESS`` was not written (see :func:`session.finish_run`)."""
    lines = [why for _, (_, why) in sorted((unavailable or {}).items())]
    unflushed = sum(r.unflushed for r in results)
    retryable = sum(r.retryable for r in results)
    skipped: dict[str, int] = {}
    for r in results:
        for why, n in r.skipped.items():
            skipped[why] = skipped.get(why, 0) + n
    for why, n in skipped.items():
        lines.append(f"{n} cases not run ({why.split(':', 1)[0]})" if why in lines else f"{n} cases not run: {why}")
    if retryable:
        errs = sum(r.counts.get("error", 0) for r in results)
        lines.append(f"{retryable} cases ended without a final outcome ({errs} error, {retryable - errs} timeout); "
                     "run the same command again to retry only those")
    if unflushed:
        lines.append(f"{unflushed} result rows could not be written; those cases will run again")
    if interrupted:
        return int(ExitCode.SIGINT if interrupted == "SIGINT" else ExitCode.SIGTERM), lines
    if unflushed:
        return int(ExitCode.WRITE_FAILED), lines
    if (markers_missing := marker_line(results, run_marker_error)) is not None:
        return int(ExitCode.WRITE_FAILED), [*lines, markers_missing]
    if auth_refused:
        return int(ExitCode.CONFIG_ERROR), lines
    budget = next((r.stopped_by for r in results if r.stopped_by), None)
    if budget and not retryable and not skipped:
        lines.append(f"stopped: {budget}; raise the budget and run again to run only the missing cases")
        return int(ExitCode.COMPLETE), lines
    if not all(r.complete for r in results):
        if not lines:
            lines.append("some cases have no final result yet; run the same command again to finish")
        return int(ExitCode.INCOMPLETE), lines
    return int(ExitCode.COMPLETE), lines
