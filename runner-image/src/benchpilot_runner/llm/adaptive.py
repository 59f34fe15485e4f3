"""PURE: the request rate one endpoint may be sent at, learned from its answers (no I/O, no asyncio).

A 429 says one of two things. Either our rate is above a limit (ours, or that of a key we share),
and sending less ends the 429s; or the provider throttles a share of requests whatever we send (a
shared gateway, a busy backend), and sending less only loses throughput. Cutting the rate on every
429 takes the second for the first: a steady trickle of 3 % random 429s held 0.1's rate near its
floor and starved the cases in the limiter's queue.

So 429s are judged by the *fraction* of answers they are, per window of sends (at least
``window_s`` and ``min_answers``; the last ``pooled_windows`` are also judged together), and by
whether that fraction moves with our rate:

* not surely above the background level plus ``tolerance``: nothing changes (a window is judged
  often, so "surely" means fewer than ``alpha`` of windows would show as many 429s by chance);
* surely above ``background_cap``: a limit we exceed, no probe needed;
* in between, a probe: one window at ``probe`` × what we sent, then one at the rate before (a fresh
  reference, unlike the window picked for its many 429s). If the fraction falls as a limit predicts
  (the 429s were the excess above it: ``1 − (1 − p) · r / r_low``), or rises (a window limit still
  full of our earlier sends), it is a limit. If it stays clearly above what a limit would leave, it
  is throttling we do not cause: the rate is restored and the fraction becomes the background level
  that later windows are judged against (it fades when they see less). Too few answers to tell:
  the rate steps down a little (a limit shows again; background would not).

Probes start on a wall-clock grid (``probe_grid_s``): the pods of a run see the same 429s and probe
together, and a pod's prediction counts only its ``fraction`` of the run's rate (one pod lowering its
share alone hardly moves a limit the run shares). After a limit the rate goes to just under what the
limit let through, stays there ``plateau_windows`` calm windows (a rate right at a window limit keeps
meeting the clumps of an earlier burst), then climbs by 1 % a window (faster the longer it stays calm)
to follow a limit that rises; excess 429s past the learned limit bring it back without a probe. A
run of 429s in a row (the limiter sees it: :meth:`AdaptiveRate.window_full`) halves the rate. The rate
never exceeds the ceiling: the pod's share of the configured limit, or what the provider's headers state.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass
from typing import Callable

from .windows import Window, binomial_tail

__all__ = ["AdaptiveRate", "AdaptiveSettings", "Verdict", "Window", "binomial_tail"]


@dataclass(frozen=True)
class AdaptiveSettings:
    window_s: float = 2.0
    """Shortest window of sends judged together."""
    min_answers: int = 10
    """Sends a window needs before it is judged (it grows until it has them, up to ``max_window_s``)."""
    pooled_windows: int = 8
    """The last windows at the same rate are also judged together (few 429s in each, many in all)."""
    max_window_s: float = 30.0
    """A window is judged after this long whatever it holds (a slow endpoint)."""
    grace_s: float = 5.0
    """How long a closed window waits for the answers of its last sends."""
    tolerance: float = 0.01
    """429s above the background level that never change the rate."""
    alpha: float = 0.001
    """How unlikely a count of 429s must be under the background level to raise a doubt."""
    background_cap: float = 0.25
    """A 429 fraction surely above this is a limit we exceed, without a probe."""
    probe: float = 0.7
    """The probe's rate, as a fraction of what was sent in the window that raised the doubt."""
    max_probe_answers: int = 300
    """A probe after few 429s needs more answers to tell (10 expected 429s), up to this many..."""
    probe_grid_s: float = 10.0
    """Probes start at multiples of this many seconds of the clock: the pods of a run, which see the same
    429s at about the same time, probe together (one pod lowering its rate alone shows nothing)."""
    probe_max_s: float = 10.0
    """... and a probe's window (and its re-check at the rate before) lasts at most this long."""
    unclear_step: float = 0.9
    """After a probe that could not tell, the rate is this fraction of the rate before."""
    margin: float = 0.95
    """The rate returns to this fraction of a learned limit."""
    plateau_windows: int = 10
    """There it stays for this many calm windows (a rate right at a window limit keeps refusing the
    clumps of an earlier burst), ..."""
    climb: float = 0.01
    """... then grows by this fraction per calm window (a limit that rose); beyond ``plateau`` times
    the learned limit doubled every..."""
    plateau: float = 1.1
    climb_doubling: int = 5
    """... this many calm windows in a row, ..."""
    max_climb: float = 0.1
    """... up to this fraction."""
    floor_ratio: float = 0.02
    """The rate never drops below this fraction of the ceiling."""
    min_rate: float = 0.01
    """Requests per second, the lowest rate without a ceiling."""


@dataclass(frozen=True)
class Verdict:
    """What the last doubtful 429s were taken for (logs, error messages, tests)."""

    kind: str  # "limit" | "background" | "probing" | "unclear"
    share: float  # the 429 fraction that raised the doubt
    at: float


@dataclass
class _Probe:
    share: float  # the 429 fraction that raised the doubt
    sent: float  # what we sent in the window that raised it (per second)
    reference: Window  # the recent windows at the rate before, together (counts only)
    before: float | None  # the rate before the probe
    low: Window  # sent at the lower rate (it starts on the grid; the rate is lowered then)
    high: Window | None = None  # sent at the rate before again: the fresh reference
    lowered: bool = False


class AdaptiveRate:
    """The request rate (per second) of one endpoint in this process; ``None`` while unlimited."""

    def __init__(self, ceiling: float | None, settings: AdaptiveSettings = AdaptiveSettings(), *,
                 clock: Callable[[], float] = time.time, fraction: float = 1.0):
        self.s = settings
        self.clock = clock
        self.fraction = fraction  # this process's part of what the run sends (its share of the limits)
        self.ceiling = ceiling
        self.rate = ceiling
        self.background = 0.0
        self.limit_estimate: float | None = None
        self.verdict: Verdict | None = None
        self.epoch = 0
        self._open = Window(clock(), 0)
        self._closed: list[Window] = []
        self._recent: collections.deque[Window] = collections.deque(maxlen=settings.pooled_windows)
        self._probe: _Probe | None = None
        self._calm_windows = 0
        self._holds: collections.deque[tuple[float, float]] = collections.deque(maxlen=16)

    # ------------------------------------------------------------------ events

    def sent(self) -> Window:
        """A request goes out now; hand the returned ticket to :meth:`answered`."""
        self._roll()
        if self.clock() < self._open.start:  # before an aligned probe window: sent at the new rate, not judged
            return Window(self.clock(), -1)
        self._open.sent += 1
        return self._open

    def answered(self, ticket: Window, throttled: bool | None) -> None:
        """The answer to a send: ``True`` a 429, ``False`` any other answer, ``None`` none at all."""
        if throttled is None:
            ticket.lost += 1
        else:
            ticket.answered += 1
            ticket.throttled += bool(throttled)
        self._roll()

    def held(self, start: float, until: float) -> None:
        """Nothing is sent from ``start`` to ``until`` (the limiter holds every request): that time does
        not count as time at the rate when a window is judged."""
        self._holds.append((start, until))

    def window_full(self) -> None:
        """A run of 429s in a row: the provider's window is full, a limit we exceed beyond doubt (no
        throttling we do not cause makes such runs). The rate halves, at most down to the learned limit."""
        now = self.clock()
        sent = self.rate if self.rate is not None else self._open.send_rate(now)
        self._probe = None
        if self.limit_estimate is None:
            self.limit_estimate = 0.5 * sent
        self._set(max(0.25 * sent, min(0.5 * sent, self.s.margin * self.limit_estimate)))
        self.verdict = Verdict("limit", 1.0, now)
        self._restart(now)

    def _held_in(self, start: float, end: float) -> float:
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in self._holds)

    def rescale(self, factor: float) -> None:
        """This process's fraction of the run's limit changed by ``factor`` (shards finished): what it
        learned was its part of a limit the run shares, so its part grows with its fraction."""
        if self.limit_estimate is not None:
            self.limit_estimate *= factor
            if self.rate is not None:
                self._set(self.rate * factor)

    def set_ceiling(self, ceiling: float | None) -> None:
        """The share or the provider's stated limit changed: never above it; up to it unless a limit was learned."""
        self.ceiling = ceiling
        if self.limit_estimate is None and self._probe is None:
            self.rate = ceiling
        elif ceiling is not None and (self.rate is None or self.rate > ceiling):
            self.rate = ceiling

    def describe(self) -> str:
        rate = "unlimited" if self.rate is None else f"{self.rate * 60:.4g}/min"
        parts = [f"rate {rate}"]
        if self.ceiling is not None:
            parts.append(f"ceiling {self.ceiling * 60:.4g}/min")
        if self.limit_estimate is not None:
            parts.append(f"learned limit ~{self.limit_estimate * 60:.4g}/min")
        if self.background:
            parts.append(f"background 429s {self.background:.0%}")
        if self.verdict is not None:
            parts.append(f"last 429s ({self.verdict.share:.0%}) taken for: {self.verdict.kind}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ windows

    def _needed(self, w: Window) -> int:
        """Sends a window needs: more in a probe after few 429s (10 of them expected), so the verdict is sure."""
        p = self._probe
        if p is not None and (w is p.low or w is p.high):
            share = max(p.share, 1e-3)
            return int(min(self.s.max_probe_answers, max(self.s.min_answers, 10 / share)))
        return self.s.min_answers

    def _roll(self) -> None:
        now = self.clock()
        if self._probe is not None and not self._probe.lowered and now >= self._probe.low.start:
            self._probe.lowered = True
            self._set(self.s.probe * self._probe.sent)
        w = self._open
        age = now - w.start
        longest = self.s.probe_max_s if self._probe is not None else self.s.max_window_s
        if (age >= self.s.window_s and (w.sent >= self._needed(w) or w.throttled >= 8)) or age >= longest:
            w.end = max(now, w.start)
            w.held = self._held_in(w.start, w.end)
            if w.sent:
                self._closed.append(w)
            self._open = Window(now, self.epoch)
            if self._probe is not None and w is self._probe.low:
                self._probe.high = self._open
                self._set(self._probe.before)
        for w in list(self._closed):
            if w.outstanding <= 0 or now - (w.end or now) >= self.s.grace_s:
                self._closed.remove(w)
                self._judge(w, now)

    def _restart(self, now: float, *, aligned: bool = False) -> None:
        """A new rate from now: windows sent at the old one are not judged; with ``aligned`` the next window
        starts at the next multiple of ``probe_grid_s`` of the clock (sends before it are not judged)."""
        self.epoch += 1
        self._closed.clear()
        start = math.ceil(now / self.s.probe_grid_s) * self.s.probe_grid_s if aligned else now
        self._open = Window(start, self.epoch)
        self._recent.clear()
        self._calm_windows = 0

    # ------------------------------------------------------------------ decisions

    def _excess(self, w: Window) -> bool:
        """More 429s than the background level plus the tolerance explain: fewer than ``alpha`` of windows
        would show as many by chance (windows are judged often: a false alarm must be rare)."""
        base = min(0.99, self.background + self.s.tolerance)
        return w.throttled >= 3 and binomial_tail(w.throttled, w.answered, base) < self.s.alpha

    def _judge(self, w: Window, now: float) -> None:
        if w.epoch != self.epoch or not w.answered:
            return
        if self._probe is not None:
            self._judge_probe(w, now)
            return
        self._recent.append(w)
        pool = Window(w.start, self.epoch, answered=sum(r.answered for r in self._recent),
                      throttled=sum(r.throttled for r in self._recent))
        surely_limit = w.throttled >= 3 and binomial_tail(w.throttled, w.answered, self.s.background_cap) < self.s.alpha
        if surely_limit or ((self._excess(w) or self._excess(pool)) and self._past_learned_limit()):
            self._limit(w, now)  # (past a limit learned before: back under it, no probe needed)
        elif self._excess(w) or self._excess(pool):
            self._start_probe(w, pool, now)
        else:
            self._calm(w, now)

    def _past_learned_limit(self) -> bool:
        return self.limit_estimate is not None and self.rate is not None and self.rate > self.limit_estimate

    def _start_probe(self, w: Window, pool: Window, now: float) -> None:
        before, sent = self.rate, w.send_rate(now)
        self._restart(now, aligned=True)
        self._probe = _Probe(pool.share, sent, pool, before, self._open)
        self.verdict = Verdict("probing", pool.share, now)

    def _judge_probe(self, w: Window, now: float) -> None:
        probe = self._probe
        if w is probe.low:
            # a window limit still full of our earlier burst: even fewer requests get through
            sigma = math.sqrt(max(probe.share * (1 - probe.share), 0.01) / w.answered)
            if w.share > probe.share + 3 * sigma + 0.05:
                self._probe = None
                self._limit(w, now, probe.sent)
            return
        if w is not probe.high:
            return
        self._probe = None
        self._verdict(probe.low, w, probe, now)

    def _verdict(self, low: Window, high: Window, probe: _Probe, now: float) -> None:
        """At the lower rate, did the 429 fraction fall as a limit predicts, or stay clearly above what a
        limit would leave? The reference is the windows before the probe and the re-check after it together
        (the doubt alone is the window picked for its many 429s: by chance, the next one has fewer)."""
        a_low, a_ref = low.send_rate(now), probe.sent
        if not low.answered or a_low > 0.9 * a_ref:  # the probe did not lower what we sent
            self._unclear(probe.share, now)
            return
        ref_n = probe.reference.answered + high.answered
        ref_k = probe.reference.throttled + high.throttled
        p_low, p_ref = low.share, ref_k / ref_n
        # the run's rate fell by our part of it, should the other pods not have probed with us
        run_rate = 1 - self.fraction * (1 - a_low / max(a_ref, 1e-9))
        predicted = max(0.0, 1 - (1 - p_ref) / max(run_rate, 1e-9))
        pooled = (low.throttled + ref_k) / (low.answered + ref_n)
        spread = max(pooled * (1 - pooled), 1e-4)
        sigma = math.sqrt(spread * (1 / low.answered + 1 / ref_n))
        if pooled > self.s.background_cap or (p_ref - p_low > 2 * sigma and p_low < (p_ref + predicted) / 2):
            self._limit(high, now, probe.sent, low)
        elif p_low - predicted > 2 * math.sqrt(spread / low.answered):
            fresh = (low.throttled + high.throttled) / max(1, low.answered + high.answered)
            self.background = min(self.s.background_cap, fresh)
            self.verdict = Verdict("background", probe.share, now)
            self._restart(now)
        elif self.limit_estimate is not None and self._excess(high):  # still too many, below a limit found before
            self._limit(high, now, probe.sent, low, seen=probe.sent * (1 - p_ref) if p_ref >= self.s.tolerance else None)
        else:
            self._unclear(probe.share, now)

    def _unclear(self, share: float, now: float) -> None:
        """Too few answers to tell: a little below the rate before (a limit shows again, background does not)."""
        if self.rate is not None:
            self._set(self.s.unclear_step * self.rate)
        self.verdict = Verdict("unclear", share, now)
        self._restart(now)

    def _limit(self, w: Window, now: float, sent: float | None = None, *others: Window, seen: float | None = None) -> None:
        """A limit we exceed at ``sent`` (this window's rate unless given): down to just under it.

        The limit is below what we sent when it showed, and about what it let through of that in a
        window where it refused a fair share (``w`` and ``others``, or ``seen``). A window where it refused nearly
        everything says little: a window limit still full of our earlier sends refuses everything until
        they age out, whatever we send now; the rate halves meanwhile, and what was learned stays."""
        sent = w.send_rate(now) if sent is None else sent
        windows = [x for x in (w, *others) if x.answered]
        partial = [x.send_rate(now) * (1 - x.share) for x in windows if self.s.tolerance <= x.share < 0.9]
        partial += [seen] if seen else []
        if partial or self.limit_estimate is None:
            self.limit_estimate = min([sent, *partial]) if partial else 0.5 * sent
            self._set(max(0.25 * sent, self.s.margin * self.limit_estimate))
        else:
            self._set(max(0.25 * sent, min(0.5 * sent, self.s.margin * self.limit_estimate)))
        self.verdict = Verdict("limit", w.share, now)
        self._restart(now)

    def _calm(self, w: Window, now: float) -> None:
        """Few 429s: the background level fades towards what is seen; the rate climbs back."""
        if w.share < self.background:
            self.background = 0.8 * self.background + 0.2 * w.share
            if self.background < 0.005:
                self.background = 0.0
        if self.rate is None:
            return
        if self.limit_estimate is None:
            self._set(self.ceiling)
            return
        # up to just under the limit fast; around it slowly (a limit that rises, or was learned low); beyond
        # it faster the longer it stays calm, as TCP's congestion window grows
        self._calm_windows += 1
        target = self.s.margin * self.limit_estimate
        if self.rate < target:
            self._set(min(target, self.rate + max(0.5 * (target - self.rate), self.s.climb * self.rate)))
            return
        if self._calm_windows <= self.s.plateau_windows:
            return
        climb = self.s.climb
        if self.rate > self.s.plateau * self.limit_estimate:
            climbing = self._calm_windows - self.s.plateau_windows
            climb = min(self.s.max_climb, climb * 2 ** (climbing // self.s.climb_doubling))
        self._set(self.rate * (1 + climb))

    def _set(self, rate: float | None) -> None:
        if rate is None:
            self.rate = self.ceiling
            return
        low = self.ceiling * self.s.floor_ratio if self.ceiling else self.s.min_rate
        high = self.ceiling if self.ceiling is not None else math.inf
        self.rate = max(low, min(high, rate))
