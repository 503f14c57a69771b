"""The method contract: what every pruning method gives the training loop.

A method is a class with a hyperparameter dataclass (``Hparams``: its fields become CLI flags and
part of the run id) and a few hooks a training loop calls. The hooks take only step/epoch
numbers, so a user can drive a method from their own loop::

    method = get_method("gmp", target_sparsity=0.9)
    plan = method.plan(epochs)                         # epochs actually trained (IMP trains more)
    optimizer = method.make_optimizer(model, OptimizerConfig(lr=0.1))
    method.attach(model, optimizer, steps_per_epoch, plan.total_epochs)
    for epoch in range(plan.total_epochs):
        for x, y in batches:
            step += 1                                  # 1-based optimizer step
            loss_fn(model(x), y).backward()
            method.after_backward(step)                # dense gradients are available here
            optimizer.step(); optimizer.zero_grad()
            method.after_step(step)                    # prune / regrow / re-apply masks
        method.on_epoch_end(epoch)                     # 0-based epoch just finished

Steps are counted from 1 (the step just taken); epochs from 0. The learning rate restarts every
``plan.lr_cycle_epochs`` epochs (IMP retrains each round with a fresh schedule).

A method that watches activations (``wants_probe = True``: DNR, DemP) is given a fixed probe
batch of training inputs before ``attach``, ``method.set_probe(x)``: eval-mode checks run on it
(the training loop passes a fixed slice of the un-augmented training split; methods never read
data themselves). Besides the weight ``masks``, a method may mask other parameters (biases,
BatchNorm γ/β of whole pruned units) with ``set_param_masks``; both kinds stay exactly zero,
optimizer state included.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from methods.masks import (all_prunable_weights, apply_mask_lists, check_reachable, magnitude_scores,
                           mask_gradients, mask_lists, masks_from_scores, masks_like, prunable_weights)


#: Optimizers whose update of a zero weight with zero gradient and zero state is exactly zero
#: (weight decay, momentum, Nesterov, Adam moments all stay 0): masks can act on the gradient.
MASK_BY_GRADIENT: tuple[type, ...] = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


@dataclass(frozen=True)
class OptimizerConfig:
    """The grid's shared optimizer settings (SGD + momentum by default)."""
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False


@dataclass(frozen=True)
class EpochPlan:
    """How many epochs a method trains, and after how many the LR schedule restarts."""
    total_epochs: int
    lr_cycle_epochs: int


@dataclass(frozen=True)
class Calibration:
    """A hyperparameter that sets a method's sparsity, searched by the harness to meet a target.

    gRDA's threshold strength ``c`` and DemP's penalty ``λ_peak`` have no target sparsity of their
    own: sparsity is an outcome of training. A method declaring ``calibration`` lets the harness
    search ``hparam`` (on a log scale inside [``low``, ``high``]; measured sparsity grows with it)
    with probe runs of the same recipe whenever the grid gives a target and ``hparam`` is 0.
    The search starts at ``start`` (default: the geometric mean of the bounds), stops at the first
    probe whose measured sparsity is within ``tolerance`` of the target, and runs at most
    ``max_probes`` probes (see ``benchmark/engine/calibration.py``).
    """
    hparam: str
    low: float
    high: float
    start: float | None = None
    tolerance: float = 0.005
    max_probes: int = 8

    @property
    def first_value(self) -> float:
        """Where the search starts: ``start``, or the geometric mean of the bounds."""
        return self.start if self.start is not None else (self.low * self.high) ** 0.5

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.first_value <= self.high or self.tolerance <= 0 or self.max_probes < 2:
            raise ValueError(f"bad calibration {self}: need 0 < low ≤ start ≤ high, tolerance > 0, "
                             "max_probes ≥ 2")


@dataclass(frozen=True)
class NoHparams:
    """A method without hyperparameters."""


class PruningMethod:
    """Base class: dense training with masks that are re-applied after every step.

    Subclasses set ``name``, ``description``, ``Hparams`` and override the hooks they need. The
    base keeps ``masks`` (name → 0/1 tensor in the weight's dtype) over ``weights`` (name →
    parameter) and re-applies them to weights *and* optimizer state after each step.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Hparams: ClassVar[type] = NoHparams
    #: True when the method removes weights at discrete prune events (what AP can ride on).
    has_prune_events: ClassVar[bool] = False
    #: Set when sparsity is an outcome of one hyperparameter that the harness must search.
    calibration: ClassVar[Calibration | None] = None
    #: True when the method needs :meth:`set_probe` (a fixed batch of training inputs) before attach.
    wants_probe: ClassVar[bool] = False

    def __init__(self, target_sparsity: float = 0.0, hparams: Any = None, seed: int = 0):
        if not 0.0 <= target_sparsity < 1.0:
            raise ValueError(f"target sparsity must be in [0, 1), got {target_sparsity}")
        self.target_sparsity = float(target_sparsity)
        self.hp = hparams if hparams is not None else self.Hparams()
        self.seed = seed
        self.masks: dict[str, Tensor] = {}
        self.weights: dict[str, nn.Parameter] = {}
        self.param_masks: dict[str, Tensor] = {}
        self.probe: Tensor | None = None
        self._params: dict[str, nn.Parameter] = {}
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.steps_per_epoch = 0
        self.total_epochs = 0
        self._mask_by_gradient = False
        self._mask_lists: tuple[list, list] = ([], [])

    # configuration ------------------------------------------------------------------------
    def set_probe(self, x: Tensor) -> None:
        """Fixed probe inputs (un-augmented training images) for eval-mode activation checks."""
        self.probe = x

    def plan(self, epochs: int) -> EpochPlan:
        """The epoch budget this method trains when the grid asks for ``epochs``."""
        return EpochPlan(total_epochs=epochs, lr_cycle_epochs=epochs)

    def make_optimizer(self, model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
        """SGD with momentum and weight decay on every parameter (methods may override)."""
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay,
                               nesterov=config.nesterov and config.momentum > 0)

    def check(self, model: nn.Module, steps_per_epoch: int, total_epochs: int) -> None:
        """Raise ``ValueError`` when this method cannot run as configured on ``model`` and budget.

        ``total_epochs`` is ``plan(epochs).total_epochs``. Changes nothing, and needs only the
        model's structure: the harness calls it on a model built on the ``meta`` device for every
        cell of a grid before any run starts, so a configuration that would fail mid-grid (an
        unreachable target, a prune window shorter than one interval, …) fails up front.
        :meth:`attach` calls it too. Subclasses extend it (and call ``super().check``).
        """

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
               total_epochs: int) -> None:
        """Bind to a model and optimizer before the first step (after :meth:`check`)."""
        self.check(model, steps_per_epoch, total_epochs)
        self.model, self.optimizer = model, optimizer
        self.steps_per_epoch, self.total_epochs = steps_per_epoch, total_epochs
        self._params = dict(model.named_parameters())
        if self.wants_probe and self.probe is None:
            raise ValueError(f"method {self.name!r} watches activations: call set_probe(x) before attach")
        self._mask_by_gradient = type(optimizer) in MASK_BY_GRADIENT

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.total_epochs

    # training hooks -----------------------------------------------------------------------
    def after_backward(self, step: int) -> None:
        """Called after ``loss.backward()``, before ``optimizer.step()``; gradients are dense.

        The base then masks the gradients of pruned weights (see :meth:`apply_masks`). An override
        that reads dense gradients does so first and calls ``super().after_backward(step)`` last.
        """
        if self._mask_lists[0] and self._mask_by_gradient:
            mask_gradients(*self._mask_lists)

    def after_step(self, step: int) -> None:
        """Called after ``optimizer.step()``; the base keeps pruned weights and their state at zero."""
        if not self._mask_by_gradient:
            self.apply_masks()

    def on_epoch_end(self, epoch: int) -> None:
        """Called after each epoch's training (0-based ``epoch``)."""

    # masks ----------------------------------------------------------------------------------
    def set_masks(self, masks: dict[str, Tensor]) -> None:
        """Install keep-masks (bool or 0/1) and apply them at once to weights and optimizer state."""
        self.masks = masks_like(self.weights, masks)
        self._refresh_mask_lists()

    def set_param_masks(self, masks: dict[str, Tensor]) -> None:
        """Install keep-masks on parameters other than ``weights`` (biases, BN γ/β; by name).

        They act exactly like weight masks (parameter and optimizer state kept at zero) but are
        not part of the weight-sparsity selection: whole-unit pruning uses them.
        """
        self.param_masks = masks_like(self._params, masks)
        self._refresh_mask_lists()

    def _refresh_mask_lists(self) -> None:
        weights, masks = mask_lists(self.weights, self.masks)
        params, param_masks = mask_lists(self._params, self.param_masks)
        self._mask_lists = (weights + params, masks + param_masks)
        self.apply_masks()

    def apply_masks(self) -> None:
        """Zero masked weights and every same-shaped optimizer state tensor.

        :meth:`set_masks` does this at once. Between mask changes, pruned weights must stay exactly
        zero after every step. For the optimizers in ``MASK_BY_GRADIENT`` a zero gradient at a
        zero weight with zero momentum/moments is an exact no-op update, so masking the gradient
        before the step (one fused op) keeps weights *and* state exactly zero; any other
        optimizer gets this full re-application after every step. Change masks only through
        :meth:`set_masks`.
        """
        if self._mask_lists[0]:
            apply_mask_lists(*self._mask_lists, self.optimizer)

    # checkpointing ---------------------------------------------------------------------------
    #: attribute names (besides ``masks``) that make up the method's resumable state.
    state_attributes: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        state = {"masks": {n: m.detach().cpu() for n, m in self.masks.items()},
                 "param_masks": {n: m.detach().cpu() for n, m in self.param_masks.items()}}
        state.update({a: getattr(self, a) for a in self.state_attributes})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for a in self.state_attributes:
            setattr(self, a, state[a])
        if state.get("param_masks"):
            self.set_param_masks(state["param_masks"])
        if state["masks"]:
            self.set_masks(state["masks"])

    # description -------------------------------------------------------------------------
    def label(self) -> str:
        """``name`` plus any non-default hyperparameters, e.g. ``gmp[end_frac=0.8]``."""
        return method_label(self.name, self.hp)


def method_label(name: str, hp: Any) -> str:
    """``name[field=value,…]``: the fields of ``hp`` that differ from their defaults, sorted by name."""
    if not dataclasses.is_dataclass(hp):
        return name
    default = type(hp)()
    diffs = [f"{f.name}={getattr(hp, f.name)}" for f in sorted(dataclasses.fields(hp), key=lambda f: f.name)
             if getattr(hp, f.name) != getattr(default, f.name)]
    return f"{name}[{','.join(diffs)}]" if diffs else name


class MaskedMethod(PruningMethod):
    """A method that removes weights at discrete *prune events* (magnitude family, GraNet, …).

    Every event goes through :meth:`prune_to`, which scores the weights (:meth:`scores`, |W| by
    default, already-pruned positions first), selects the new masks and installs them. A modifier
    such as AP intercepts exactly this call. ``hp`` must extend :class:`methods.hparams.MaskHparams`.
    """

    has_prune_events: ClassVar[bool] = True

    def check(self, model: nn.Module, steps_per_epoch: int, total_epochs: int) -> None:
        """The target must be reachable with the layers this method may prune."""
        super().check(model, steps_per_epoch, total_epochs)
        check_reachable(model, self.target_sparsity, self.hp.prune_first, self.hp.prune_classifier)

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
               total_epochs: int) -> None:
        super().attach(model, optimizer, steps_per_epoch, total_epochs)
        self.weights = prunable_weights(model, self.hp.prune_first, self.hp.prune_classifier)
        self.total_prunable = sum(w.numel() for w in all_prunable_weights(model).values())

    def scores(self) -> dict[str, Tensor]:
        """Importance per weight (higher = keep): ``|W|``, with pruned positions at −1."""
        return magnitude_scores(self.weights, self.masks or None)

    def select_masks(self, sparsity: float) -> dict[str, Tensor]:
        """Keep-masks reaching ``sparsity`` (over all prunable weights) by this method's scores."""
        return masks_from_scores(self.scores(), sparsity, scope=self.hp.scope,
                                 budget=self.hp.budget, total=self.total_prunable)

    def prune_to(self, sparsity: float) -> None:
        """A prune event: select and install masks at ``sparsity``."""
        self.set_masks(self.select_masks(sparsity))
