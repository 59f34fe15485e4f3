"""Run-wide limit shares: the sum never exceeds the limit, holders never shrink, the tail gets it all."""

from __future__ import annotations

import random

import pytest

from benchpilot_operator.shares import allocate
from benchpilot_runner.contract.shares import share_of, shown
from benchpilot_runner.contract.types import EndpointLimits


def test_start_split_finish_and_tail():
    s = allocate({}, holding=[], creating=[0, 1, 2, 3], all_started=False)
    assert s == {0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25}
    # shard 0 finishes, shard 4 starts: it gets exactly what 0 freed
    s = allocate(s, holding=[1, 2, 3], creating=[4], all_started=True)
    assert s == {1: 0.25, 2: 0.25, 3: 0.25, 4: 0.25}
    # nothing left to start; two finish: the rest grow to the whole limit
    s = allocate(s, holding=[3, 4], creating=[], all_started=True)
    assert s == {3: 0.5, 4: 0.5}
    s = allocate(s, holding=[4], creating=[], all_started=True)
    assert s == {4: 1.0}


def test_a_new_shard_takes_only_what_is_free():
    s = {0: 0.5, 1: 0.5}  # the tail had grown; a resumed shard must not push the sum above 1
    s = allocate(s, holding=[0, 1], creating=[2], all_started=True)
    assert s[2] == 0.0 and s[0] == s[1] == 0.5
    # no grow while a shard is still waiting to start
    s = allocate({0: 0.25, 1: 0.25}, holding=[0, 1], creating=[], all_started=False)
    assert s == {0: 0.25, 1: 0.25}


@pytest.mark.parametrize("seed", range(40))
def test_random_lifecycles_keep_every_invariant(seed):
    rng = random.Random(seed)
    shards = rng.randint(1, 30)
    parallel = rng.randint(1, 10)
    waiting = list(range(shards))
    holding: set[int] = set()
    shares: dict[int, float] = {}
    for _ in range(500):
        if not waiting and not holding:
            break
        finished = {i for i in holding if rng.random() < 0.3}
        holding -= finished
        creating = waiting[:max(0, parallel - len(holding))]
        waiting = waiting[len(creating):]
        new = allocate(shares, holding, creating, all_started=not waiting)
        assert sum(new.values()) <= 1.0 + 1e-9, "never above the limit"
        for i in holding:
            assert new[i] >= shares.get(i, 0.0) - 1e-12, "a holder's share never shrinks"
        assert set(new) == holding | set(creating), "finished shards hold nothing"
        if not waiting and new:
            assert sum(new.values()) == pytest.approx(1.0), "the tail uses the whole limit"
        shares = new
        holding |= set(creating)


def test_absolute_limits_are_what_the_pod_uses():
    # one computation: the ConfigMap shows exactly the limits a pod holding the fraction applies
    # (0.2 had two: the ConfigMap showed 15 concurrent requests where the pod allowed itself 16)
    assert shown(share_of(EndpointLimits(400, 100000, 64), 0.25)) == {
        "requestsPerMinute": 100.0, "tokensPerMinute": 25000.0, "maxConcurrency": 16}
    assert shown(share_of(EndpointLimits(None, None, None), 0.5)) == {
        "requestsPerMinute": None, "tokensPerMinute": None, "maxConcurrency": None}
    third = share_of(EndpointLimits(100, None, 10), 1 / 3)
    assert 3 * shown(third)["requestsPerMinute"] <= 100 and shown(third)["maxConcurrency"] == 3
    assert share_of(EndpointLimits(100, 1000, 4), 0.0) == EndpointLimits(0.01, 0.01, 1)  # waits, never zero
