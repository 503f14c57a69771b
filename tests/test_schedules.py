"""Exact checks of the cubic schedule, prune windows and LR schedules (methods.schedules)."""
import math

import pytest

from methods.schedules import PruneWindow, cubic_sparsity, lr_at, one_cycle


def test_cubic_schedule_by_hand():
    assert cubic_sparsity(0, 4, 0.0, 0.8) == 0.0
    assert cubic_sparsity(1, 4, 0.0, 0.8) == pytest.approx(0.8 * (1 - 0.75 ** 3))
    assert cubic_sparsity(2, 4, 0.2, 0.8) == pytest.approx(0.8 + (0.2 - 0.8) * 0.5 ** 3)
    assert cubic_sparsity(4, 4, 0.0, 0.8) == 0.8  # the last event reaches s_f exactly
    assert cubic_sparsity(9, 4, 0.0, 0.8) == 0.8
    assert cubic_sparsity(0, 0, 0.0, 0.8) == 0.8


def test_prune_window_events_end_exactly_at_tf():
    w = PruneWindow.over(1000, 0.1, 0.5)
    assert (w.start, w.interval, w.end, w.n_events) == (100, 13, 500, 31)  # 400 // 30 = 13; ⌈400/13⌉
    assert w.event_at(99) is None
    assert w.event_at(100) == 0
    assert w.event_at(113) == 1
    assert w.event_at(114) is None
    assert w.event_at(100 + 30 * 13) == 30        # step 490, the last regular event
    assert w.event_at(500) == 31                  # then tf itself, 10 steps later
    assert w.event_at(100 + 31 * 13) is None      # step 503 is past tf
    assert w.sparsity_at(490, 0.0, 0.9) == pytest.approx(0.9 * (1 - (10 / 400) ** 3))
    assert w.sparsity_at(500, 0.0, 0.9) == 0.9    # exactly s_f at tf, not one Δt before
    assert w.sparsity_at(100, 0.2, 0.9) == pytest.approx(0.2)
    fixed = PruneWindow.over(1000, 0.0, 0.5, interval=100)
    assert (fixed.start, fixed.interval, fixed.end, fixed.n_events) == (0, 100, 500, 5)
    assert [fixed.event_at(t) for t in (0, 100, 400, 500, 600)] == [0, 1, 4, 5, None]
    # with tf − t0 a multiple of Δt the schedule is Zhu & Gupta's, event by event
    for j in range(6):
        assert fixed.sparsity_at(100 * j, 0.0, 0.8) == pytest.approx(cubic_sparsity(j, 5, 0.0, 0.8))


@pytest.mark.parametrize("args, message", [
    ((1000, 0.6, 0.5), "start_frac < end_frac"),
    ((1000, 0.5, 0.5), "start_frac < end_frac"),
    ((1000, 0.0, 0.5, 501), "interval"),          # Δt longer than the window: an error, not one shot
    ((1, 0.0, 0.4), "holds no step"),
])
def test_prune_window_rejects_bad_windows(args, message):
    with pytest.raises(ValueError, match=message):
        PruneWindow.over(*args)


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


def test_one_cycle_start_peak_end_by_hand():
    """DemP's optax one-cycle: peak/25 → peak at ⌊0.3·span⌋ → peak/2.5e5 at span, cosine in between."""
    assert one_cycle(0, 100, 1.0) == pytest.approx(0.04)
    assert one_cycle(15, 100, 1.0) == pytest.approx(1 + (0.04 - 1) / 2)       # half-way up: cos(π/2) = 0
    assert one_cycle(30, 100, 1.0) == pytest.approx(1.0)
    assert one_cycle(65, 100, 1.0) == pytest.approx(4e-6 + (1 - 4e-6) / 2)   # half-way down
    assert one_cycle(100, 100, 1.0) == pytest.approx(4e-6)
    assert one_cycle(10_000, 100, 5e-5) == pytest.approx(5e-5 / 2.5e5)
    assert one_cycle(2, 7, 1.0) == pytest.approx(1.0)                         # peak at int(2.1) = 2
    with pytest.raises(ValueError, match="span"):
        one_cycle(0, 0, 1.0)


def test_death_pressure_stops_after_its_span():
    from torch import nn

    from methods.pressure import DeathPressure
    pressure = DeathPressure(nn.Linear(2, 2), [], lambda_peak=1e-3, noise_peak=5e-5, span=10, seed=0)
    assert pressure.lam(4) == pytest.approx(1e-3) and pressure.sigma(4) == pytest.approx(5e-5)  # the peak
    assert pressure.lam(10) > 0 and pressure.sigma(10) > 0   # the span's last step
    assert pressure.lam(11) == 0.0 and pressure.sigma(11) == 0.0
