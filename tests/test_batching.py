"""On-device batching (benchmark/batching.py): seeded permutations, partial batches, crop + flip."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.data.batching import eval_batches, steps_per_epoch, train_batches
from benchmark.data.containers import Split


pytestmark = pytest.mark.usefixtures("one_thread", "fresh_data_cache")


def _indexed_split(n: int, c: int = 1, side: int = 3) -> Split:
    """A split whose image i is filled with the value i (so rows can be traced) and label i."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, c, side, side).contiguous()
    return Split(x, torch.arange(n))


# --------------------------------------------------------------------------------------------------
# batching
# --------------------------------------------------------------------------------------------------

def _labels(split: Split, **kwargs) -> list[list[int]]:
    return [y.tolist() for _, y in train_batches(split, **kwargs)]


def test_train_batches_permutation_and_order():
    split = _indexed_split(50)
    batches = list(train_batches(split, 8, seed=0, epoch=0))
    assert len(batches) == steps_per_epoch(50, 8) == 7
    assert [len(y) for _, y in batches] == [8] * 6 + [2]
    ys = torch.cat([y for _, y in batches])
    assert sorted(ys.tolist()) == list(range(50)) and ys.tolist() != list(range(50))
    for x, y in batches:                         # images follow their labels
        assert torch.equal(x[:, 0, 0, 0], y.float())
    base = _labels(split, batch_size=8, seed=0, epoch=0)
    assert _labels(split, batch_size=8, seed=0, epoch=0) == base
    assert _labels(split, batch_size=8, seed=0, epoch=1) != base
    assert _labels(split, batch_size=8, seed=1, epoch=0) != base


def test_train_batches_drop_last():
    split = _indexed_split(10)
    assert [len(y) for _, y in train_batches(split, 4, 0, 0)] == [4, 4, 2]
    kept = list(train_batches(split, 4, 0, 0, drop_last=True))
    assert [len(y) for _, y in kept] == [4, 4] and steps_per_epoch(10, 4, drop_last=True) == 2
    assert list(train_batches(split, 16, 0, 0, drop_last=True)) == []
    assert (steps_per_epoch(0, 4), steps_per_epoch(8, 4), steps_per_epoch(9, 4)) == (0, 2, 3)
    with pytest.raises(ValueError):
        steps_per_epoch(10, 0)


def _crop_candidates(image: torch.Tensor, pad: int = 4) -> list[torch.Tensor]:
    """Every crop of the zero-padded image, plain and mirrored (reference, by explicit loops)."""
    _, h, w = image.shape
    padded = F.pad(image, (pad, pad, pad, pad))
    crops = [padded[:, i:i + h, j:j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]
    return crops + [crop.flip(-1) for crop in crops]


def test_augmentation_is_crop_and_flip():
    n, c, side = 6, 3, 5
    x = torch.arange(1, n * c * side * side + 1, dtype=torch.float32).view(n, c, side, side)
    split = Split(x, torch.arange(n))
    candidates = [_crop_candidates(x[i]) for i in range(n)]
    flips = shifted = 0
    for epoch in range(4):
        plain = _labels(split, batch_size=4, seed=3, epoch=epoch)
        aug = list(train_batches(split, 4, seed=3, epoch=epoch, augment=True))
        assert [y.tolist() for _, y in aug] == plain            # augmentation does not change the order
        for xb, yb in aug:
            assert xb.shape == (len(yb), c, side, side)
            for img, label in zip(xb, yb.tolist()):
                matches = [k for k, cand in enumerate(candidates[label]) if torch.equal(img, cand)]
                assert matches, "augmented image is not a (flipped) crop of its padded source"
                flips += matches[0] >= 81
                shifted += matches[0] % 81 != 40             # 40 = centre crop (offset 4, 4)
    assert flips > 0 and shifted > 0
    first = list(train_batches(split, 4, seed=3, epoch=1, augment=True))
    again = list(train_batches(split, 4, seed=3, epoch=1, augment=True))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))
    other = list(train_batches(split, 4, seed=4, epoch=1, augment=True))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))


def test_eval_batches_sequential():
    split = _indexed_split(23)
    batches = list(eval_batches(split, 5))
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
    assert torch.cat([y for _, y in batches]).tolist() == list(range(23))
    assert torch.equal(torch.cat([x for x, _ in batches]), split.x)
