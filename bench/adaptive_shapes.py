"""The adaptive rate controller alone (llm/adaptive.py, pure) against simulated server shapes.

No network and no processes: each pod is a controller sending smoothly at its rate (a 0.25 s bucket)
on a simulated clock, each request answered after 50 ms (a 429 after 5 ms) by a simulated server:
  random P      a share P of requests answered 429, whatever the rate
  sliding N/W   at most N requests per sliding W seconds (a window limit: it admits a burst, then
                refuses everything until the burst ages out)
  bucket R/C    R requests per second refilled continuously, C at most (OpenAI's, Anthropic's kind)
Each shape runs 120 s with the pods configured at a multiple of the real limit (their shares summing
to it), as bench/rate_limits.py's scenarios do with real processes. Printed per shape: what was sent
and answered per second of the steady state (after 30 s) over the real limit, and the share of 429s
in the steady state (and over the whole run). It shows where the controller is good and where it is
not (a 10× over-configured window limit shared by 4 pods; a window limit that locks out before any
probe can tell the limit from the burst).
    .venv/bin/python bench/adaptive_shapes.py
"""

from __future__ import annotations

import collections
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runner-image" / "src"))

from benchpilot_runner.llm.adaptive import AdaptiveRate  # noqa: E402


def random_server(share: float):
    return lambda t, rng: rng.random() < share


def sliding(n: int, window_s: float):
    recent: collections.deque = collections.deque()

    def server(t: float, rng) -> bool:
        while recent and t - recent[0] >= window_s:
            recent.popleft()
        if len(recent) >= n:
            return True
        recent.append(t)
        return False
    return server


def bucket(rate: float, capacity: float):
    state = {"tokens": capacity, "t": 0.0}

    def server(t: float, rng) -> bool:
        state["tokens"] = min(capacity, state["tokens"] + (t - state["t"]) * rate)
        state["t"] = t
        if state["tokens"] >= 1:
            state["tokens"] -= 1
            return False
        return True
    return server


def simulate(server, *, pods: int, configured: float, seconds: float = 120.0, dt: float = 0.005, seed: int = 1):
    """[(time, throttled)] of every request of ``pods`` controllers sharing ``configured`` requests/s."""
    rng = random.Random(seed)
    now = [0.0]
    ctrls = [AdaptiveRate(configured / pods, clock=lambda: now[0], fraction=1 / pods) for _ in range(pods)]
    credit = [0.0] * pods
    pending, sends = [], []
    while now[0] < seconds:
        t = now[0]
        order = list(range(pods))
        rng.shuffle(order)  # a real server serves the pods' requests interleaved
        for i in order:
            rate = ctrls[i].rate or 1e9
            credit[i] = min(credit[i] + rate * dt, max(1.0, rate * 0.25))
            while credit[i] >= 1:
                credit[i] -= 1
                ticket = ctrls[i].sent()
                throttled = server(t, rng)
                sends.append((t, throttled))
                pending.append((t + (0.005 if throttled else 0.05), i, ticket, throttled))
        due = [p for p in pending if p[0] <= t]
        pending = [p for p in pending if p[0] > t]
        for _, i, ticket, throttled in due:
            ctrls[i].answered(ticket, throttled)
        now[0] = t + dt
    return sends


SHAPES = [  # name, server, pods, configured requests/s, the real limit (requests/s)
    ("random 3 %, 1 pod", lambda: random_server(0.03), 1, 50, 50),
    ("random 10 %, 1 pod", lambda: random_server(0.10), 1, 50, 50),
    ("random 10 %, 4 pods", lambda: random_server(0.10), 4, 50, 50),
    ("sliding 40/10 s ×2, 4 pods", lambda: sliding(40, 10), 4, 8, 4),
    ("sliding 200/10 s ×2, 1 pod", lambda: sliding(200, 10), 1, 40, 20),
    ("sliding 200/10 s ×2, 4 pods", lambda: sliding(200, 10), 4, 40, 20),
    ("sliding 100/5 s ×2, 1 pod", lambda: sliding(100, 5), 1, 40, 20),
    ("sliding 600/10 s ×2, 2 pods", lambda: sliding(600, 10), 2, 120, 60),
    ("sliding 200/10 s ×10, 4 pods", lambda: sliding(200, 10), 4, 200, 20),
    ("bucket 20/s ×2, 1 pod", lambda: bucket(20, 10), 1, 40, 20),
    ("bucket 20/s ×2, 4 pods", lambda: bucket(20, 20), 4, 40, 20),
    ("bucket 4/s ×2, 4 pods", lambda: bucket(4, 4), 4, 8, 4),
]


def main() -> None:
    for name, make, pods, configured, limit in SHAPES:
        sends = simulate(make(), pods=pods, configured=configured)
        steady = [s for s in sends if s[0] >= 30]
        span = 90.0
        sent = len(steady) / span / limit
        answered = sum(not s[1] for s in steady) / span / limit
        share = sum(s[1] for s in steady) / max(1, len(steady))
        overall = sum(s[1] for s in sends) / max(1, len(sends))
        print(f"{name:30s} sent {sent:.2f}, answered {answered:.2f} of the limit; 429s {share:.1%} "
              f"({overall:.1%} over the whole run)", flush=True)


if __name__ == "__main__":
    main()
