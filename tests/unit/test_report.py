"""Readers take one row per case: a final outcome if there is one, else the latest attempt."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from benchpilot_runner import report as R

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def table(rows):
    cols = ("namespace", "run", "uid", "case_id", "status", "attempt", "finished_at")
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)}).set_column(
        5, "attempt", pa.array([r[5] for r in rows], pa.int32()))


def test_final_beats_a_later_error_and_the_latest_attempt_wins_among_errors():
    t = table([
        ("d", "r", "u", "a", "success", 1, T0),
        ("d", "r", "u", "a", "error", 2, T0 + dt.timedelta(1)),  # a second writer's retry: not final
        ("d", "r", "u", "b", "error", 1, T0),
        ("d", "r", "u", "b", "timeout", 2, T0),
        ("d", "r", "u", "c", "failure", 1, T0),
        ("d", "r", "u", "c", "failure", 1, T0 + dt.timedelta(1)),  # the same part written twice
        ("d", "r", "v", "a", "error", 1, T0),  # another result set: never merged with u
    ])
    kept = R.dedupe(t).to_pylist()
    got = {(r["uid"], r["case_id"]): (r["status"], r["attempt"], r["finished_at"]) for r in kept}
    assert got == {("u", "a"): ("success", 1, T0), ("u", "b"): ("timeout", 2, T0),
                   ("u", "c"): ("failure", 1, T0 + dt.timedelta(1)), ("v", "a"): ("error", 1, T0)}
    assert sorted(R.losers_of(t, R.winners(t)).to_pylist()) == [1, 2, 4]
