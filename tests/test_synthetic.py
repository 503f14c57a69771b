"""The generated data sets: ``synthetic`` (learnable, for tests) and ``random-cifar`` (speed checks)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.data import registry as data
from benchmark.data.batching import train_batches
from benchmark.data.registry import load_dataset


pytestmark = pytest.mark.usefixtures("one_thread", "fresh_data_cache")


def test_synthetic_shapes_and_determinism():
    torch.manual_seed(123)
    first = load_dataset("synthetic")
    data.clear_cache()
    torch.manual_seed(456)                       # the global RNG must not matter
    second = load_dataset("synthetic")
    assert first is not second
    assert (len(first.train), len(first.test), first.num_classes) == (2048, 512, 10)
    assert first.in_shape == (1, 28, 28)
    assert first.source == "generated" and first.augment is False
    for a, b in ((first.train, second.train), (first.test, second.test)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert torch.bincount(first.train.y, minlength=10).min() > 0
    assert set(first.test.y.tolist()) == set(range(10))
    assert abs(first.train.x.mean().item()) < 1e-4 and abs(first.train.x.std().item() - 1) < 1e-3


def test_synthetic_is_learnable():
    ds = load_dataset("synthetic")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Linear(28 * 28, 10)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(3):
            for x, y in train_batches(ds.train, 64, seed=0, epoch=epoch):
                opt.zero_grad()
                F.cross_entropy(model(x.flatten(1)), y).backward()
                opt.step()
        with torch.no_grad():
            acc = (model(ds.test.x.flatten(1)).argmax(1) == ds.test.y).float().mean().item()
    assert 0.5 < acc < 1.0


def test_random_cifar_has_cifar_shapes_and_is_deterministic():
    first = load_dataset("random-cifar")
    data.clear_cache()
    second = load_dataset("random-cifar")
    assert (len(first.train), len(first.test), first.in_shape) == (50000, 10000, (3, 32, 32))
    assert first.augment is True and first.source == "generated"
    assert torch.equal(first.train.x[:5], second.train.x[:5]) and torch.equal(first.test.y, second.test.y)
