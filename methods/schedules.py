"""Sparsity schedules shared by the gradual methods.

The cubic schedule is Zhu & Gupta, *To prune, or not to prune* (2017), eq. (1):

    s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (n·Δt))^3,   t ∈ {t0, t0 + Δt, …, t0 + n·Δt}

so the first event (t = t0) sits at s_i and the n-th event after it reaches s_f exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


def cubic_sparsity(event: int, n_events: int, initial: float, final: float) -> float:
    """Sparsity at prune event ``event`` (0 … n_events) of the cubic schedule."""
    if n_events <= 0:
        return final
    progress = min(max(event / n_events, 0.0), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


@dataclass(frozen=True)
class PruneWindow:
    """Prune events every ``interval`` steps from ``start`` to ``start + n_events·interval``.

    Steps are 1-based optimizer steps (the step just taken). An event falls on step t when
    ``t ≥ start``, ``(t − start) % interval == 0`` and the event index ≤ ``n_events``.
    """
    start: int
    interval: int
    n_events: int

    @classmethod
    def over(cls, total_steps: int, start_frac: float, end_frac: float, interval: int = 0,
             default_events: int = 30) -> "PruneWindow":
        """Window spanning [start_frac, end_frac] of ``total_steps``.

        ``interval=0`` picks Δt so that about ``default_events`` events fit in the window (GraNet's
        CIFAR recipe has Δt = 1000 iterations over 80 epochs × 391 ≈ 31 events); the window is
        kept, the interval scales with the run length.
        """
        if not 0.0 <= start_frac <= end_frac <= 1.0:
            raise ValueError(f"need 0 ≤ start_frac ≤ end_frac ≤ 1, got {start_frac}, {end_frac}")
        start = round(start_frac * total_steps)
        end = round(end_frac * total_steps)
        span = end - start
        if interval <= 0:
            interval = max(1, span // default_events)
        return cls(start=start, interval=interval, n_events=span // interval)

    def event_at(self, step: int) -> int | None:
        """Event index at ``step`` or ``None``."""
        offset = step - self.start
        if offset < 0 or offset % self.interval:
            return None
        event = offset // self.interval
        return event if event <= self.n_events else None


def lr_at(step: int, steps_per_cycle: int, base_lr: float, schedule: str,
          warmup_steps: int = 0) -> float:
    """Learning rate at 0-based ``step`` inside a cycle of ``steps_per_cycle`` steps.

    ``cosine``: linear warm-up then half-cosine to 0. ``step``: ×0.1 at 50% and 75% of the cycle.
    ``constant``: ``base_lr`` throughout (after warm-up).
    """
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        progress = step / steps_per_cycle
        return base_lr * (0.01 if progress >= 0.75 else 0.1 if progress >= 0.5 else 1.0)
    if schedule == "cosine":
        span = max(1, steps_per_cycle - warmup_steps)
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * (step - warmup_steps) / span))
    raise ValueError(f"unknown lr schedule {schedule!r}; choose from: constant, cosine, step")


LR_SCHEDULES = ("cosine", "step", "constant")
