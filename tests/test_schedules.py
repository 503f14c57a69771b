"""Exact checks of the cubic schedule, prune windows and LR schedules (methods.schedules)."""
import math

import pytest

from methods.schedules import PruneWindow, cubic_sparsity, lr_at


def test_cubic_schedule_by_hand():
    assert cubic_sparsity(0, 4, 0.0, 0.8) == 0.0
    assert cubic_sparsity(1, 4, 0.0, 0.8) == pytest.approx(0.8 * (1 - 0.75 ** 3))
    assert cubic_sparsity(2, 4, 0.2, 0.8) == pytest.approx(0.8 + (0.2 - 0.8) * 0.5 ** 3)
    assert cubic_sparsity(4, 4, 0.0, 0.8) == 0.8  # the last event reaches s_f exactly
    assert cubic_sparsity(9, 4, 0.0, 0.8) == 0.8
    assert cubic_sparsity(0, 0, 0.0, 0.8) == 0.8


def test_prune_window_events():
    w = PruneWindow.over(1000, 0.1, 0.5)
    assert (w.start, w.interval, w.n_events) == (100, 13, 30)  # 400 steps // 30 events
    assert w.event_at(99) is None
    assert w.event_at(100) == 0
    assert w.event_at(113) == 1
    assert w.event_at(114) is None
    assert w.event_at(100 + 30 * 13) == 30
    assert w.event_at(100 + 31 * 13) is None
    fixed = PruneWindow.over(1000, 0.0, 0.5, interval=100)
    assert (fixed.start, fixed.interval, fixed.n_events) == (0, 100, 5)
    with pytest.raises(ValueError):
        PruneWindow.over(1000, 0.6, 0.5)


def test_lr_schedules():
    assert lr_at(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(50, 100, 0.1, "cosine") == pytest.approx(0.05)
    assert lr_at(25, 100, 0.1, "cosine") == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))
    assert [lr_at(s, 100, 0.1, "step") for s in (0, 49, 50, 74, 75)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001])
    assert lr_at(0, 100, 0.1, "cosine", warmup_steps=10) == pytest.approx(0.01)
    assert lr_at(9, 100, 0.1, "cosine", warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(10, 100, 0.1, "cosine", warmup_steps=10) == pytest.approx(0.1)
    assert lr_at(30, 100, 0.1, "constant") == 0.1
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_at(0, 10, 0.1, "linear")
