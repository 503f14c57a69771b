"""Training a method for a spec's epochs at the level of the engine's loop (no store, no CLI): what the
tests of every method on a precision or a network share."""
from __future__ import annotations

from typing import Callable

import torch

import methods
from benchmark.data.batching import steps_per_epoch, train_batches
from benchmark.data.containers import Dataset
from benchmark.engine import train
from benchmark.engine.device import DivergenceGuard, Precision
from benchmark.engine.probe import probe_inputs
from benchmark.spec import RunSpec


def train_method(spec: RunSpec, data: Dataset, precision: Precision,
                 before_training: Callable[[torch.nn.Module], None] = lambda model: None):
    """Build ``spec``'s model and method, attach and train every planned epoch; (model, method,
    optimizer). ``before_training`` sees the model once it is built (to add hooks)."""
    model, method = train.build(spec, data, torch.device("cpu"))
    plan = method.plan(spec.epochs)
    config = methods.OptimizerConfig(lr=spec.lr, weight_decay=spec.weight_decay)
    optimizer = method.make_optimizer(model, config)
    n_steps = steps_per_epoch(len(data.train), spec.batch_size)
    if method.wants_probe:
        method.set_probe(probe_inputs(data.train))
    method.attach(model, optimizer, n_steps, plan.total_epochs)
    before_training(model)
    for epoch in range(plan.total_epochs):
        batches = train_batches(data.train, spec.batch_size, spec.seed, epoch)
        loss, _ = train.train_epoch(model, method, optimizer, precision, batches, epoch * n_steps,
                                    lambda step: spec.lr, DivergenceGuard(torch.device("cpu"), n_steps))
        method.on_epoch_end(epoch)
        assert loss == loss  # finite, not NaN
    return model, method, optimizer
