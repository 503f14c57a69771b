"""Hidden units as parameter slices: which tensors make a unit, and zeroing, re-initialising or
masking whole units.

A *unit* is a channel of an activation module (see :mod:`methods.activations`): a conv output
channel or a hidden linear neuron. Its parameters are found by tracing the model once with
``torch.fx``, walking back from every activation module to the ``Conv2d``/``Linear`` layers that
produce its input (through ``BatchNorm`` and residual additions) and forward to the layers that
read its output (through pooling, dropout and flattening):

- *incoming*: the producers' output rows (weight and bias) and the BatchNorm scale γ and shift β
  in between. Zeroing all of them makes the unit's output act(0) = 0 for every input (for ReLU,
  LeakyReLU and SiLU alike), in train and eval mode.
- *outgoing*: the consumers' input columns. They multiply the unit's output, so once the unit is
  pruned they are dead weight and are masked too (function-preserving), as DemP's physical
  removal drops them (Dufort-Labbé et al., arXiv 2403.07688).

A unit is *prunable* when every path into its activation ends in a producer; a residual addition
with an identity or padding shortcut carries its input past any mask, so those units are watched
but never zeroed or pruned (DemP slices the identity shortcut instead; masks cannot). The
classifier (last ``Linear``) never produces a unit.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import Tensor, nn

from methods.activations import ACTIVATION_TYPES
from methods.masks import classifier_name

PRODUCER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d)
#: Modules and functions that keep the channel of their input (on the way to a consumer).
PASS_TYPES: tuple[type[nn.Module], ...] = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                                           nn.AdaptiveMaxPool2d, nn.Dropout, nn.Identity, nn.Flatten)
_ADD = {operator.add, operator.iadd, torch.add}
_PASS_FUNCTIONS = {torch.flatten, nn.functional.max_pool2d, nn.functional.avg_pool2d,
                   nn.functional.adaptive_avg_pool2d, nn.functional.dropout}


@dataclass(frozen=True)
class UnitGroup:
    """The units of one activation module and the parameter slices that make them."""
    activation: str
    size: int
    producers: tuple[str, ...]                  # Conv2d/Linear modules: output row u feeds unit u
    norms: tuple[str, ...]                      # BatchNorm modules between producers and activation
    consumers: tuple[tuple[str, int], ...]      # (module, block): unit u is columns [u·block, (u+1)·block)
    prunable: bool                              # every path into the activation is a producer chain

    def incoming(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        """(parameter name, parameter) of every incoming slice: dim 0 indexes the unit."""
        out = []
        for name in self.producers + self.norms:
            module = model.get_submodule(name)
            for attr in ("weight", "bias"):
                p = getattr(module, attr, None)
                if isinstance(p, nn.Parameter):
                    out.append((f"{name}.{attr}", p))
        return out


def unit_groups(model: nn.Module) -> list[UnitGroup]:
    """The unit groups of ``model``, one per activation module, in graph order.

    Raises ValueError when the model cannot be traced by ``torch.fx`` (data-dependent control
    flow); every model of the registry traces.
    """
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as err:  # fx raises many types; the user needs one line
        raise ValueError(f"cannot trace {type(model).__name__} with torch.fx to find its units: "
                         f"{err}") from None
    modules = dict(model.named_modules())
    classifier = classifier_name(model)
    groups = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], ACTIVATION_TYPES):
            continue
        producers, norms, ok = _walk_back(node.args[0], modules)
        sizes = {_out_channels(modules[n]) for n in producers + norms}
        ok = ok and bool(producers) and len(sizes) == 1 and classifier not in producers
        size = sizes.pop() if len(sizes) == 1 else 0
        consumers = _walk_forward(node, modules, size) if ok else ()
        groups.append(UnitGroup(node.target, size, tuple(producers), tuple(norms), consumers, ok))
    return groups


def _out_channels(module: nn.Module) -> int:
    if isinstance(module, nn.Conv2d):
        return module.out_channels
    if isinstance(module, nn.Linear):
        return module.out_features
    return module.num_features


def _walk_back(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[list[str], list[str], bool]:
    """Producers and norms feeding ``node``; False when some path has no producer."""
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, PRODUCER_TYPES) and getattr(module, "groups", 1) == 1:
            return [node.target], [], True
        if isinstance(module, NORM_TYPES):
            producers, norms, ok = _walk_back(node.args[0], modules)
            return producers, norms + [node.target], ok
    if node.op == "call_function" and node.target in _ADD and len(node.args) == 2 \
            and all(isinstance(a, fx.Node) for a in node.args):
        (p1, n1, ok1), (p2, n2, ok2) = (_walk_back(a, modules) for a in node.args)
        return p1 + p2, n1 + n2, ok1 and ok2
    return [], [], False


def _walk_forward(node: fx.Node, modules: dict[str, nn.Module], size: int) -> tuple[tuple[str, int], ...]:
    """Layers reading the units of ``node`` as input columns, with the block of columns per unit."""
    out = []
    for user in node.users:
        target = modules.get(user.target) if user.op == "call_module" else None
        if isinstance(target, PRODUCER_TYPES):
            width = target.in_channels if isinstance(target, nn.Conv2d) else target.in_features
            if getattr(target, "groups", 1) == 1 and width % size == 0:
                out.append((user.target, width // size))
        elif isinstance(target, PASS_TYPES) or (
                user.op == "call_function" and user.target in _PASS_FUNCTIONS):
            out.extend(_walk_forward(user, modules, size))
    return tuple(out)


def unit_index(size: int, units: Tensor, block: int = 1) -> Tensor:
    """Indices of the rows (block 1) or column blocks of ``units`` out of ``size``."""
    units = units.flatten().long()
    if block == 1:
        return units
    return (units.view(-1, 1) * block + torch.arange(block, device=units.device)).flatten()


@torch.no_grad()
def zero_units(model: nn.Module, group: UnitGroup, units: Tensor) -> None:
    """Set the incoming slices (weights, biases, BN γ and β) of ``units`` to zero; state is kept."""
    for _, p in group.incoming(model):
        p.index_fill_(0, units.to(p.device), 0.0)


@torch.no_grad()
def reinit_units(model: nn.Module, group: UnitGroup, units: Tensor, generator: torch.Generator,
                 optimizer: torch.optim.Optimizer | None = None) -> None:
    """Draw fresh incoming weights for ``units`` (biases and BN β 0, BN γ 1) and clear their state.

    Convolutions get the registry's Kaiming-normal (fan_out, ReLU gain), linear layers PyTorch's
    default U(−1/√fan_in, 1/√fan_in), drawn from ``generator`` (never the global RNG). The
    optimizer state of those slices (momentum, Adam moments) is zeroed: a fresh start.
    """
    for name, p in group.incoming(model):
        idx = units.to(p.device)
        module = model.get_submodule(name.rsplit(".", 1)[0])
        rows = len(units)
        if isinstance(module, NORM_TYPES):
            p.index_fill_(0, idx, 1.0 if name.endswith("weight") else 0.0)
        elif name.endswith("bias"):
            p.index_fill_(0, idx, 0.0)
        else:
            shape = (rows,) + tuple(p.shape[1:])
            if isinstance(module, nn.Conv2d):
                std = math.sqrt(2.0 / (p.shape[0] * math.prod(p.shape[2:])))
                fresh = torch.randn(shape, generator=generator) * std
            else:
                bound = 1.0 / math.sqrt(p.shape[1])
                fresh = (torch.rand(shape, generator=generator) * 2 - 1) * bound
            p.index_copy_(0, idx, fresh.to(device=p.device, dtype=p.dtype))
        state = optimizer.state.get(p, {}) if optimizer is not None else {}
        for value in state.values():
            if torch.is_tensor(value) and value.shape == p.shape:
                value.index_fill_(0, idx, 0.0)


def unit_keep_masks(model: nn.Module, pruned: dict[str, Tensor],
                    groups: list[UnitGroup]) -> dict[str, Tensor]:
    """Keep-masks (bool) over every parameter slice of the pruned units, keyed by parameter name.

    ``pruned`` maps a group's activation name to a bool (units,) tensor. Incoming rows, biases
    and BN γ/β are cut along dim 0, consumers' input columns along dim 1; parameters no pruned
    unit touches are absent.
    """
    params = dict(model.named_parameters())
    keep: dict[str, Tensor] = {}

    def cut(name: str, dim: int, index: Tensor) -> None:
        p = params[name]
        mask = keep.setdefault(name, torch.ones(p.shape, dtype=torch.bool, device=p.device))
        mask.index_fill_(dim, index.to(p.device), False)

    for group in groups:
        units = pruned.get(group.activation)
        if units is None or not bool(units.any()):
            continue
        idx = units.nonzero().flatten()
        for name, _ in group.incoming(model):
            cut(name, 0, idx)
        for consumer, block in group.consumers:
            cut(f"{consumer}.weight", 1, unit_index(group.size, idx, block))
    return keep
