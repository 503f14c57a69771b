"""Metrics, with the denominators of design.md.

- ``top1``: correct / examples over the whole split (summed, never averaged per batch).
- ``sparsity``: exact-zero weights / all weights of the prunable tensors (Conv2d and Linear);
  ``layer_sparsity`` per tensor; ``sparsity_all``: zero parameters / all parameters.
- ``neuron_sparsity``: structurally dead units / all units of hidden layers. A unit is an output
  channel of a Conv2d or an output neuron of a Linear other than the classifier; it is dead when
  all its incoming weights are exactly zero.
- ``dead_rate_static`` / ``dead_rate_dynamic``: see :mod:`methods.activations`.
- ``macs_dense`` / ``macs_sparse``: multiply-accumulates of one example's forward pass through the
  Conv2d and Linear layers (normalisation, pooling and activations are not counted). Sparse MACs
  count, per layer, the non-zero weights times the layer's output positions — the layer's MACs
  scaled by its weight density, the count of RigL (Evci et al. 2020) and ShrinkBench (Blalock
  et al. 2020) —, so a dense model reads exactly 100%. A pruned unit's outgoing weights are masked
  by the methods that prune units, so it drops by its incoming and outgoing MACs.
- ``macs_live``: sparse MACs that also skip the inputs never alive on the evaluation data (a unit
  that ReLU keeps at zero on every test example, an always-black pixel), without counting a
  channel twice when it is both pruned and dead: what a kernel that knew the dead inputs in
  advance would compute. Data-dependent, so even a dense model reads below 100%.
  All three are theoretical: masked weights are still multiplied on real hardware.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Callable

import torch
from torch import Tensor, nn

from benchmark.data.batching import eval_batches
from benchmark.data.containers import Split
from benchmark.engine.world import SINGLE, World
from methods.masks import all_prunable_weights, classifier_name, count_zeros, prunable_modules


def weight_sparsity(model: nn.Module) -> tuple[float, dict[str, float]]:
    """(sparsity over all prunable weights, per-tensor sparsity), measured from the weights."""
    weights = all_prunable_weights(model)
    layers = {}
    for name, w in weights.items():
        zeros, total = count_zeros([w])
        layers[name] = zeros / total
    zeros, total = count_zeros(weights.values())
    return (zeros / total if total else 0.0), layers


def parameter_counts(model: nn.Module) -> dict[str, float]:
    """``params``, ``params_nonzero`` and ``sparsity_all`` over every parameter of the model."""
    zeros, total = count_zeros(p.detach() for p in model.parameters())
    return {"params": total, "params_nonzero": total - zeros,
            "sparsity_all": zeros / total if total else 0.0}


def hidden_unit_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv2d and Linear modules whose outputs are hidden units (every one but the classifier)."""
    classifier = classifier_name(model)
    return {n: m for n, m in prunable_modules(model).items() if n != classifier}


def structurally_dead_units(model: nn.Module) -> dict[str, Tensor]:
    """Per hidden layer, a bool (units,) tensor: True where every incoming weight is zero."""
    return {name: (m.weight.detach().flatten(1) == 0).all(dim=1)
            for name, m in hidden_unit_layers(model).items()}


def neuron_sparsity(model: nn.Module) -> float:
    """Structurally dead units / all hidden units."""
    dead = structurally_dead_units(model)
    total = sum(d.numel() for d in dead.values())
    return float(sum(int(d.sum()) for d in dead.values())) / total if total else 0.0


class LayerProbe:
    """Forward hooks on Conv2d/Linear layers recording output positions and alive input channels.

    An input channel (conv) or feature (linear) is *alive* when it is non-zero for at least one
    example and position seen while the probe is attached.
    """

    def __init__(self, model: nn.Module):
        self.layers = prunable_modules(model)
        self.positions: dict[str, int] = {}
        self._alive: dict[str, Tensor] = {}
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.layers.items()]

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, out: Tensor) -> None:
            x = inputs[0].detach()
            if isinstance(module, nn.Conv2d):
                alive = x.abs().amax(dim=(0, 2, 3)) > 0
                self.positions[name] = out.shape[2] * out.shape[3]
            else:
                alive = x.abs().reshape(-1, x.shape[-1]).amax(dim=0) > 0
                self.positions[name] = out[0].numel() // out.shape[-1]
            prev = self._alive.get(name)
            self._alive[name] = alive if prev is None else prev | alive
        return hook

    def alive_inputs(self) -> dict[str, Tensor]:
        return dict(self._alive)

    def share(self, world: World) -> None:
        """Alive on any process of ``world`` (each saw its own share of the data): an input is alive
        when it is alive on one of them."""
        self._alive = {name: world.max_(a.to(torch.int32)).bool() for name, a in self._alive.items()}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def macs(model: nn.Module, probe: LayerProbe) -> tuple[int, int]:
    """(dense MACs, sparse MACs) of one example: every weight vs the non-zero weights, times the
    output positions the probe saw."""
    dense = sparse = 0
    for name, module in probe.layers.items():
        if name in probe.positions:  # else a layer the forward pass never reached
            w = module.weight.detach()
            dense += probe.positions[name] * w.numel()
            sparse += probe.positions[name] * int(torch.count_nonzero(w))
    return dense, sparse


def live_macs(model: nn.Module, probe: LayerProbe) -> int:
    """MACs of one example counting only the non-zero weights that read an input alive on the data
    the probe saw (``macs_live``)."""
    live = 0
    alive_inputs = probe.alive_inputs()
    for name, module in probe.layers.items():
        if name not in probe.positions:
            continue
        nonzero = module.weight.detach() != 0
        alive = alive_inputs[name]
        if getattr(module, "groups", 1) == 1 and alive.numel() == nonzero.shape[1]:
            nonzero = nonzero[:, alive]
        live += probe.positions[name] * int(nonzero.sum())
    return live


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int,
             autocast: Callable[[], AbstractContextManager] = nullcontext, world: World = SINGLE) -> float:
    """Top-1 accuracy: correct / examples over the whole split, in eval mode. On a multi-process
    ``world`` each process evaluates its contiguous part of the split and the counts are summed."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.device)
    for x, y in eval_batches(split, batch_size, world.shard):
        with autocast():
            logits = model(x)
        correct += (logits.argmax(dim=1) == y).sum()
    model.train(was_training)
    return int(world.sum_(correct)) / len(split)
