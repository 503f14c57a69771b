"""Sparsity schedules shared by the gradual methods.

The cubic schedule is Zhu & Gupta, *To prune, or not to prune* (2017), eq. (1):

    s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (n·Δt))^3,   t ∈ {t0, t0 + Δt, …, t0 + n·Δt}

so the first event (t = t0) sits at s_i and the n-th event after it reaches s_f exactly. When
the window tf − t0 is not a multiple of Δt, :class:`PruneWindow` adds a last, shorter step so the
final event still falls on tf and reaches s_f (the official GraNet code's last event instead falls
a factor 1/n³ of the way short of s_f: it indexes events k0 … kf − 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


def cubic_sparsity(event: float, n_events: int, initial: float, final: float) -> float:
    """Sparsity at prune event ``event`` (0 … n_events) of the cubic schedule (s_f at the last)."""
    if n_events <= 0 or event >= n_events:
        return final
    progress = max(event / n_events, 0.0)
    return final + (initial - final) * (1.0 - progress) ** 3


@dataclass(frozen=True)
class PruneWindow:
    """Prune events every ``interval`` steps from ``start`` (t0), the last one exactly at ``end`` (tf).

    Steps are 1-based optimizer steps (the step just taken; step 0 = before training). The events
    fall on t0, t0 + Δt, t0 + 2Δt, … while before tf, and on tf itself: when the window is not a
    multiple of Δt the last gap is shorter, so the schedule always ends at tf (never up to Δt
    early). Event ``j`` has index j = 0 … ``n_events``; tf is event ``n_events``.
    """
    start: int
    interval: int
    end: int

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"the prune window is empty: it starts at step {self.start} and ends at "
                             f"step {self.end}")
        if self.interval < 1 or self.interval > self.end - self.start:
            raise ValueError(f"the prune interval Δt={self.interval} steps must be in [1, "
                             f"{self.end - self.start}] (the window's length in steps)")

    @classmethod
    def over(cls, total_steps: int, start_frac: float, end_frac: float, interval: int = 0,
             default_events: int = 30) -> "PruneWindow":
        """Window spanning [start_frac, end_frac] of ``total_steps``.

        ``interval=0`` picks Δt = ⌊window / ``default_events``⌋ (at least 1), so about 30 events
        fit in the window whatever the run length: GraNet's CIFAR recipe has Δt = 1000 iterations
        over 80 epochs, which makes 27 events at its 352 iterations per epoch (10% validation split)
        or 30 at 391. The window is kept, the interval scales with the run.
        An explicit interval longer than the window is an error (it would silently make a
        gradual method one-shot).
        """
        if not 0.0 <= start_frac < end_frac <= 1.0:
            raise ValueError(f"need 0 ≤ start_frac < end_frac ≤ 1, got {start_frac}, {end_frac}")
        start = round(start_frac * total_steps)
        end = round(end_frac * total_steps)
        if end <= start:
            raise ValueError(f"the prune window [{start_frac}, {end_frac}] of {total_steps} steps holds "
                             f"no step; train longer or widen the window")
        if interval <= 0:
            interval = max(1, (end - start) // default_events)
        return cls(start=start, interval=interval, end=end)

    @property
    def n_events(self) -> int:
        """Index of the last event (at ``end``); there are ``n_events + 1`` events in all."""
        return -(-(self.end - self.start) // self.interval)

    def event_at(self, step: int) -> int | None:
        """Event index at ``step`` or ``None``."""
        if step == self.end:
            return self.n_events
        offset = step - self.start
        if offset < 0 or step > self.end or offset % self.interval:
            return None
        return offset // self.interval

    def progress(self, step: int) -> float:
        """(t − t0) / (tf − t0), clipped to [0, 1]."""
        return min(max((step - self.start) / (self.end - self.start), 0.0), 1.0)

    def sparsity_at(self, step: int, initial: float, final: float) -> float:
        """The cubic schedule at ``step``: s_f + (s_i − s_f)(1 − (t − t0)/(tf − t0))^3.

        At the regular events t0 + jΔt this is Zhu & Gupta's s_t with nΔt = tf − t0 whenever the
        window is a multiple of Δt, and it reaches s_f exactly at tf.
        """
        return cubic_sparsity(self.progress(step), 1, initial, final) if step < self.end else final

    def update_at(self, step: int, last: int) -> bool:
        """A mask-update step (e.g. GraNet's regeneration): every event after step 0, then Δt on.

        True at every event of the window except step 0 (no gradient exists before training) and,
        past tf, at every step of the same grid t0 + jΔt up to ``last`` inclusive. ``last`` =
        ``end`` confines updates to the window.
        """
        if step < 1 or step > last or step < self.start:
            return False
        if step <= self.end:
            return self.event_at(step) is not None
        return (step - self.start) % self.interval == 0


def cosine_decay(step: int, total: int, initial: float, final: float) -> float:
    """Cosine annealing from ``initial`` at step 0 to ``final`` at ``total``.

    r_t = final + (initial − final)(1 + cos(π t / T)) / 2, clipped to t ∈ [0, T]: the schedule of
    GraNet's death rate (PyTorch's ``CosineAnnealingLR`` with ``eta_min = final``, stepped once per
    iteration).
    """
    progress = min(max(step / total, 0.0), 1.0) if total > 0 else 1.0
    return final + (initial - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def window_of(method_name: str, hparams, total_steps: int) -> PruneWindow:
    """The window of a method whose hparams have ``start_frac``, ``end_frac`` and ``interval``.

    A bad window is a ``ValueError`` naming the method.
    """
    try:
        return PruneWindow.over(total_steps, hparams.start_frac, hparams.end_frac, hparams.interval)
    except ValueError as err:
        raise ValueError(f"{method_name}: {err}") from None


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


def one_cycle(step: int, span: int, peak: float, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4) -> float:
    """DemP's one-cycle cosine schedule (optax ``cosine_onecycle_schedule``) at 0-based ``step``.

    Dufort-Labbé et al., arXiv 2403.07688 (code SimonDufLab/Maxwell_demon) put the regularisation
    strength λ and the update-noise std σ on it. It starts at ``peak / div_factor``, rises by a
    half-cosine to ``peak`` at step ⌊pct_start·span⌋, falls by a half-cosine to
    ``peak / (div_factor·final_div_factor)`` (peak/2.5e5 by default) at step ``span`` and stays
    there. The boundaries are truncated to integers as optax does.
    """
    if span < 1:
        raise ValueError(f"the one-cycle span must be at least one step, got {span}")
    start, final = peak / div_factor, peak / (div_factor * final_div_factor)
    top, end = int(pct_start * span), int(span)
    if step >= end:
        return final
    if step < top:
        a, b, frac = start, peak, step / top
    else:
        a, b, frac = peak, final, (step - top) / (end - top)
    return b + (a - b) / 2.0 * (math.cos(math.pi * frac) + 1.0)
