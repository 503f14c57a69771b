"""One run: a ``RunSpec`` in, a result dict out (the store persists it as ``result.json``).

The loop is the same for every method: seeded model initialisation (or the ``--init-from``
weights) and data order (so every method in a grid starts from identical weights and sees
identical batches per seed), SGD with momentum unless the method brings its own optimizer, a
per-step LR schedule, AMP on CUDA, and the method's hooks around ``backward`` and ``step``.
Dead-neuron counting rides on forward hooks. Device, precision, memory layout and the divergence
check live in :mod:`benchmark.engine.device`.

With ``procs_per_run`` N > 1 a run is N data-parallel processes (:mod:`benchmark.engine.launch`
starts them, :mod:`benchmark.engine.world` holds what they share): each takes every N-th example of
the same global batches, its loss is scaled so that DDP's averaged gradient is exactly the global
batch's mean gradient (shares of a last partial batch may differ by one example), BatchNorm
statistics are averaged after every step, counts are all-reduced, and every rank's weights and
masks are checked to be bitwise identical after every epoch. Rank 0 alone reports progress, writes
checkpoints and returns the result.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

import methods
from benchmark.engine import metrics
from benchmark.data.batching import global_batch_size, steps_per_epoch, train_batches
from benchmark.data.containers import Dataset
from benchmark.data.registry import load_dataset
from benchmark.engine.checkpoint import read_checkpoint, restore, save_checkpoint
from benchmark.engine.device import (DivergenceGuard, Precision, environment, prepare_model, resolve_device,
                                     uses_channels_last)
from benchmark.engine.init_from import load_initial_weights
from benchmark.engine.launch import run_processes
from benchmark.engine.pause_points import pause_point
from benchmark.engine.probe import dead_units_entry, probe_inputs
from benchmark.engine.world import SINGLE, World, backend_for, check_replicas, rank_device, sync_buffers
from benchmark.spec import RunSpec
from benchmark.store.layout import checkpoint_file
from benchmark.store.schema import build_result
from methods.activations import ActivationMonitor
from methods.schedules import lr_at
from models import get_model

EVAL_BATCH = 1024
#: ``progress(epochs_done, total)``: called as training advances — every 1% of an epoch's batches
#: (a fractional count, so a long streamed epoch shows its progress) and after every epoch.
ProgressFn = Callable[[float, int], None]
#: How many progress reports an epoch makes before its end.
PROGRESS_STEPS = 100


def build(spec: RunSpec, dataset: Dataset, device: torch.device):
    """Model (seeded init, identical for every method of a seed; or the ``--init-from`` weights,
    loaded before the method attaches or the optimizer exists) and method instance."""
    torch.manual_seed(spec.seed)
    model = get_model(spec.model, dataset.in_shape, dataset.num_classes, activation=spec.activation)
    load_initial_weights(model, spec)
    model.to(device)
    method = methods.get_method(spec.method, target_sparsity=spec.target_sparsity, seed=spec.seed,
                                **spec.method_hparams)
    return model, method


def run(spec: RunSpec, progress: ProgressFn | None = None, workdir: Path | None = None) -> dict[str, Any]:
    """Train and measure one run; returns the complete result dict (status ``complete``).

    Computes with ``spec.threads`` CPU threads (restored afterwards). Raises :class:`Diverged` as
    soon as the training loss is not finite. With ``workdir`` and ``spec.checkpoint_every``, a
    checkpoint is written atomically every N epochs and an interrupted run resumes from it. With
    ``spec.procs_per_run`` > 1 the run is computed by that many new processes (one per GPU).
    """
    if spec.procs_per_run > 1:
        backend = backend_for(resolve_device(spec.device))
        return run_processes(run_rank, (spec, workdir, progress is not None), spec.procs_per_run, backend,
                             progress)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        return _run(spec, progress, workdir, SINGLE)
    finally:
        torch.set_num_threads(previous_threads)


def run_rank(world: World, report: ProgressFn, spec: RunSpec, workdir: Path | None,
             reports_progress: bool) -> dict[str, Any]:
    """One process of a multi-process run (:func:`benchmark.engine.launch.run_processes` calls it).

    The global random generator is seeded the same on every rank (by :func:`build`): a method or
    plugin drawing from it decides the same everywhere; dropout masks repeat across the ranks'
    different examples.
    """
    torch.set_num_threads(spec.threads)
    return _run(spec, report if reports_progress and world.is_main else None, workdir, world)


def _run(spec: RunSpec, progress: ProgressFn | None, workdir: Path | None, world: World) -> dict[str, Any]:
    device = rank_device(resolve_device(spec.device), world)
    precision = Precision(device, spec.amp)
    env = environment(device, precision, world)
    dataset = load_dataset(spec.dataset, root=spec.data_root, val_fraction=spec.val_fraction,
                           image_size=spec.image_size, workers=spec.data_workers).to(device)
    env["data_source"] = dataset.source
    checkpoint = checkpoint_file(workdir) if workdir and spec.checkpoint_every > 0 else None
    saved = read_checkpoint(checkpoint, spec) if checkpoint is not None else None
    model, method = build(spec, dataset, device)
    runner = prepare_model(model, device, spec.compile, world)
    channels_last = uses_channels_last(model, device)
    env["channels_last"], env["compiled"] = channels_last, spec.compile
    plan = method.plan(spec.epochs)
    optimizer = method.make_optimizer(model, methods.OptimizerConfig(
        lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, nesterov=spec.nesterov))
    n_steps = steps_per_epoch(len(dataset.train), spec.batch_size)
    probe = probe_inputs(dataset.train)
    if method.wants_probe:
        method.set_probe(probe)
    method.attach(model, optimizer, n_steps, plan.total_epochs)
    monitor = ActivationMonitor(model)

    history: list[dict[str, Any]] = []
    start_epoch, train_time = 0, 0.0
    if saved is not None:
        start_epoch, train_time, history = restore(saved, model, optimizer, method, precision)
    resumed_from = start_epoch or None
    check_replicas({"resumed epoch": torch.tensor(start_epoch)}, world, "on the checkpoint to resume from")

    cycle_steps, warmup_steps = plan.lr_cycle_epochs * n_steps, spec.warmup_epochs * n_steps

    def lr_of(step: int) -> float:
        return lr_at(step % cycle_steps, cycle_steps, spec.lr, spec.lr_schedule, warmup_steps)

    guard = DivergenceGuard(device, n_steps, world)
    shares = Shares(world, len(dataset.train), spec.batch_size) if world.distributed else None
    for epoch in range(start_epoch, plan.total_epochs):
        pause_point("epoch_started")
        t0 = time.perf_counter()
        monitor.reset_zeros()
        monitor.count_zeros = True
        batches = train_batches(dataset.train, spec.batch_size, spec.seed, epoch, augment=dataset.augment,
                                shard=world.shard)
        if progress is not None:
            batches = reporting(batches, epoch, n_steps, plan.total_epochs, progress)
        train_loss, lr = train_epoch(runner, method, optimizer, precision, batches, epoch * n_steps, lr_of,
                                     guard, channels_last, shares)
        guard.check()
        monitor.count_zeros = False
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        last = epoch == plan.total_epochs - 1
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss / len(dataset.train),
                  "dead_rate_dynamic": monitor.zero_rate(world.sum_),
                  "dead_units": dead_units_entry(model, probe),
                  "sparsity": metrics.weight_sparsity(model)[0], "epoch_time_s": epoch_time,
                  "top1": None}
        if not last and spec.eval_every > 0 and (epoch + 1) % spec.eval_every == 0:
            record["top1"] = metrics.evaluate(model, dataset.test, EVAL_BATCH, precision.autocast, world)
        history.append(record)
        method.on_epoch_end(epoch)  # after the epoch's record: IMP rewinds here
        check_replicas(replica_state(model, method), world, f"after epoch {epoch + 1}")
        if checkpoint is not None and world.is_main and not last and (epoch + 1) % spec.checkpoint_every == 0:
            save_checkpoint(checkpoint, spec, epoch + 1, train_time, history, model, optimizer, method,
                            precision)
            pause_point("checkpoint_saved")
        if progress is not None:
            progress(epoch + 1, plan.total_epochs)

    final = final_metrics(model, dataset, monitor, precision, world)
    monitor.remove()
    history[-1]["top1"] = final["top1"]
    sparsity, layer_sparsity = metrics.weight_sparsity(model)
    result_metrics = {
        **final, "sparsity": sparsity, **metrics.parameter_counts(model),
        "neuron_sparsity": metrics.neuron_sparsity(model),
        "dead_rate_dynamic": history[-1]["dead_rate_dynamic"],
        "train_time_s": train_time, "epochs": plan.total_epochs, "num_classes": dataset.num_classes,
    }
    if checkpoint is not None and world.is_main:
        checkpoint.unlink(missing_ok=True)
    return build_result(spec, "complete", method.label(), result_metrics, history, environment=env,
                        layer_sparsity=layer_sparsity, resumed_from_epoch=resumed_from)


def reporting(batches: Iterable, epoch: int, n_steps: int, total: int, progress: ProgressFn) -> Iterator:
    """``batches``, calling ``progress(epoch + done / n_steps, total)`` every 1% of the epoch's batches."""
    every = max(1, n_steps // PROGRESS_STEPS)
    for done, batch in enumerate(batches, start=1):
        yield batch
        if done % every == 0 and done < n_steps:
            progress(epoch + done / n_steps, total)


class Shares:
    """How one process's share of each global batch enters the loss on a multi-process ``world``.

    A rank's loss is the sum of its examples' losses × ``world.size`` / (examples in the global
    batch): DDP averages the ranks' gradients, so the update is the global batch's mean gradient
    whatever the sizes of the shares (those of a last partial batch may differ by one).
    """

    def __init__(self, world: World, examples: int, batch_size: int):
        self.world, self.examples, self.batch_size = world, examples, batch_size

    def weight(self, step_in_epoch: int) -> float:
        """The factor of the summed loss of this rank's share in 0-based ``step_in_epoch``."""
        return self.world.size / global_batch_size(self.examples, self.batch_size, step_in_epoch)


def train_epoch(model: torch.nn.Module, method: methods.PruningMethod, optimizer: torch.optim.Optimizer,
                precision: Precision, batches, first_step: int,
                lr_of: Callable[[int], float], guard: DivergenceGuard | None = None,
                channels_last: bool = False, shares: Shares | None = None) -> tuple[float, float]:
    """One epoch of the shared loop; returns (summed training loss, last learning rate).

    ``first_step`` is the number of optimizer steps before this epoch; steps passed to the
    method's hooks are 1-based. The loss is accumulated on the device (no per-step host sync on
    a GPU); ``guard`` stops the epoch with :class:`Diverged` when the loss is not finite. With
    ``channels_last`` the batches are laid out NHWC like the model. With ``shares`` of a
    multi-process world, ``batches`` are this rank's shares: the loss is weighted by
    :meth:`Shares.weight`, BatchNorm statistics are averaged over the ranks after every backward,
    and the returned loss is summed over the ranks.
    """
    model.train()
    world = shares.world if shares is not None else SINGLE
    loss_sum = torch.zeros((), device=next(model.parameters()).device)
    step, current_lr = first_step, None
    for x, y in batches:
        lr = lr_of(step)
        step += 1
        if lr != current_lr:
            for group in optimizer.param_groups:
                group["lr"] = lr
            current_lr = lr
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with precision.autocast():
            if shares is None:
                loss = F.cross_entropy(model(x), y)
            else:
                weight = shares.weight(step - first_step - 1)
                loss = F.cross_entropy(model(x), y, reduction="sum") * weight
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss, optimizer)
        sync_buffers(model, world)
        method.after_backward(step)
        precision.step(optimizer)
        method.after_step(step)
        if shares is None:
            loss_sum.add_(loss.detach(), alpha=y.shape[0])
        else:
            loss_sum.add_(loss.detach(), alpha=1 / weight)
        if guard is not None:
            guard.observe(loss, step)
    return float(world.sum_(loss_sum)), current_lr


def replica_state(model: torch.nn.Module, method: methods.PruningMethod) -> dict[str, torch.Tensor]:
    """What must be bitwise equal on every rank of a run: parameters, buffers and the method's masks."""
    return {**dict(model.named_parameters()), **dict(model.named_buffers()),
            **{f"mask {n}": m for n, m in method.masks.items()},
            **{f"parameter mask {n}": m for n, m in method.param_masks.items()}}


def final_metrics(model: torch.nn.Module, dataset: Dataset, monitor: ActivationMonitor,
                  precision: Precision, world: World = SINGLE) -> dict[str, Any]:
    """One pass over the test set (eval mode): top-1, statically dead units, MACs (alive inputs too).
    On a multi-process ``world`` each rank passes over its part; what they saw is combined."""
    probe = metrics.LayerProbe(model)
    monitor.reset_units()
    monitor.track_units = True
    top1 = metrics.evaluate(model, dataset.test, EVAL_BATCH, precision.autocast, world)
    monitor.track_units = False
    probe.remove()
    if world.distributed:
        monitor.reduce_units(world.max_)
        probe.share(world)
    macs_dense, macs_sparse = metrics.macs(model, probe)
    macs_live = metrics.live_macs(model, probe)
    val = (metrics.evaluate(model, dataset.val, EVAL_BATCH, precision.autocast, world)
           if dataset.val is not None else None)
    return {"top1": top1, "val_top1": val, "dead_rate_static": monitor.dead_unit_rate(),
            "macs_dense": macs_dense, "macs_sparse": macs_sparse,
            "macs_live": macs_live}
