"""Timing of a replay: latency distribution, offered vs processed rate, dropped frames, throughput search.

Inputs are plain numbers recorded by the player: for every offered frame its
header stamp (ns) and the wall-clock time it was published (s), and for every
answered frame the wall-clock time its result (``scene``) was received.

A three-frame network cannot answer every frame: in the paper mode the first
and the last frame of a run have no neighbour on one side (``lookahead`` 1),
in the causal mode the first one (``lookahead`` 0). Those *unanswerable* frames
are not counted as dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_DROP_FRACTION = 0.05


def distribution(values_ms) -> dict:
    """{count, mean, p50, p95, max, min} of a list of milliseconds (NaN figures when empty)."""
    values = np.asarray([v for v in values_ms if v is not None and np.isfinite(v)], np.float64)
    if values.size == 0:
        nan = float("nan")
        return {"count": 0, "mean": nan, "p50": nan, "p95": nan, "max": nan, "min": nan}
    return {"count": int(values.size), "mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)), "max": float(values.max()), "min": float(values.min())}


def _rate(times_s) -> float:
    times = np.sort(np.asarray(times_s, np.float64))
    if times.size < 2 or times[-1] <= times[0]:
        return float("nan")
    return float((times.size - 1) / (times[-1] - times[0]))


@dataclass
class RunTiming:
    """What the player saw during one run: offered frames and the results received for them."""

    offered_stamps: list[int] = field(default_factory=list)       # ns, in publishing order
    offered_wall: list[float] = field(default_factory=list)       # s, time.monotonic() at publish
    received_wall: dict[int, float] = field(default_factory=dict)  # stamp ns → s, first result for that stamp

    def offer(self, stamp_ns: int, wall_s: float) -> None:
        self.offered_stamps.append(int(stamp_ns))
        self.offered_wall.append(float(wall_s))

    def receive(self, stamp_ns: int, wall_s: float) -> None:
        self.received_wall.setdefault(int(stamp_ns), float(wall_s))


def unanswerable_frames(offered: int, lookahead: int | None) -> int:
    """How many of ``offered`` consecutive frames a three-frame engine cannot answer by design."""
    if offered == 0:
        return 0
    if lookahead is None:
        return 0
    return min(offered, 1 + int(lookahead))


def summarize(timing: RunTiming, lookahead: int | None = 1, node_latency_ms=(), engine_ms=()) -> dict:
    """The timing section of a report for one run.

    ``lookahead``: frames the node waits for after the one it describes (1 in
    the paper mode, 0 in the causal mode, None when unknown: then every
    unanswered frame counts as dropped). ``node_latency_ms`` / ``engine_ms``:
    what the node itself reported per frame (``scene.latency_ms`` / ``engine_ms``).
    """
    stamps = timing.offered_stamps
    offered = len(stamps)
    index_of = {s: i for i, s in enumerate(stamps)}
    answered = [s for s in stamps if s in timing.received_wall]
    unexpected = sorted(set(timing.received_wall) - set(index_of))
    unanswerable = unanswerable_frames(offered, lookahead)
    dropped = max(0, offered - len(answered) - unanswerable)
    expected = max(0, offered - unanswerable)

    end_to_end, from_trigger, offsets = [], [], []
    t0 = timing.offered_wall[0] if timing.offered_wall else 0.0
    answered_index = [index_of[s] for s in answered]
    for k, s in enumerate(answered):
        i = index_of[s]
        received = timing.received_wall[s]
        end_to_end.append((received - timing.offered_wall[i]) * 1000.0)
        offsets.append(timing.offered_wall[i] - t0)
        # The frame that completed the triple: with a look-ahead, the next frame the node processed, which
        # is the next answered one; for the last answered frame, the newest frame offered before its result.
        if not lookahead:
            trigger = i
        elif k + 1 < len(answered_index):
            trigger = answered_index[k + 1]
        else:
            trigger = offered - 1
        while trigger > i and timing.offered_wall[trigger] > received:  # it cannot have come after the result
            trigger -= 1
        from_trigger.append((received - timing.offered_wall[trigger]) * 1000.0)
    return {
        "frames_offered": offered,
        "frames_processed": len(answered),
        "frames_dropped": dropped,
        "frames_unanswerable": unanswerable,
        "drop_fraction": float(dropped / expected) if expected else 0.0,
        "results_for_unknown_stamps": len(unexpected),
        "offered_rate_hz": _rate(timing.offered_wall),
        "processed_rate_hz": _rate([timing.received_wall[s] for s in answered]),
        "duration_s": float(max(timing.received_wall.values(), default=t0) - t0) if offered else 0.0,
        "lookahead_frames": lookahead,
        "latency_ms": distribution(end_to_end),
        "latency_from_trigger_ms": distribution(from_trigger),
        "node_latency_ms": distribution(node_latency_ms),
        "engine_ms": distribution(engine_ms),
        "per_frame": {"offered_at_s": offsets, "latency_ms": end_to_end, "latency_from_trigger_ms": from_trigger},
    }


def best_sustained_rate(trials: list[dict], max_drop_fraction: float = MAX_DROP_FRACTION) -> float | None:
    """Highest offered rate (Hz) among ``trials`` ({"rate_hz", "drop_fraction"}) with at most
    ``max_drop_fraction`` dropped, provided every slower trial passed too (ros2_benchmark's criterion)."""
    best = None
    for trial in sorted(trials, key=lambda t: t["rate_hz"]):
        if trial["drop_fraction"] > max_drop_fraction:
            break
        best = float(trial["rate_hz"])
    return best


class ThroughputSearch:
    """Chooses the rates of a throughput search (ros2_benchmark style) from the trials so far.

    Rising geometric rates from ``start_hz`` (× ``growth``) until a trial drops
    more than ``max_drop_fraction``; then ``refinements`` bisections between the
    best passing and the slowest failing rate. When the first rate already
    fails, it goes down (÷ ``growth``, at most ``max_trials`` trials in all).
    """

    def __init__(self, start_hz: float, growth: float = 1.5, refinements: int = 2,
                 max_drop_fraction: float = MAX_DROP_FRACTION, max_hz: float = 200.0, max_trials: int = 10):
        if start_hz <= 0 or growth <= 1:
            raise ValueError(f"throughput search needs start_hz > 0 and growth > 1, got {start_hz}, {growth}")
        self.start_hz, self.growth, self.refinements = float(start_hz), float(growth), int(refinements)
        self.max_drop_fraction, self.max_hz, self.max_trials = max_drop_fraction, max_hz, max_trials
        self.trials: list[dict] = []
        self._bisections = 0

    def add(self, trial: dict) -> None:
        """Record a finished trial ({"rate_hz", "drop_fraction", …})."""
        self.trials.append(trial)

    def _passes(self, trial: dict) -> bool:
        return trial["drop_fraction"] <= self.max_drop_fraction

    def next_rate(self) -> float | None:
        """The next rate to try (Hz), or None when the search is over."""
        if not self.trials:
            return self.start_hz
        if len(self.trials) >= self.max_trials:
            return None
        passing = sorted(t["rate_hz"] for t in self.trials if self._passes(t))
        failing = sorted(t["rate_hz"] for t in self.trials if not self._passes(t))
        if not failing:
            nxt = passing[-1] * self.growth
            return nxt if nxt <= self.max_hz else None
        if not passing:
            nxt = failing[0] / self.growth
            return nxt if nxt >= 0.05 else None
        below = [r for r in passing if r < failing[0]]
        if not below or self._bisections >= self.refinements:
            return None
        self._bisections += 1
        return (below[-1] + failing[0]) / 2.0

    def result(self) -> dict:
        return {
            "criterion": f"highest offered rate with at most {self.max_drop_fraction:.0%} of frames dropped "
                         "(and every slower rate passing)",
            "max_sustained_rate_hz": best_sustained_rate(self.trials, self.max_drop_fraction),
            "trials": sorted(self.trials, key=lambda t: t["rate_hz"]),
        }
