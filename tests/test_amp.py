"""Every registered method under bf16 autocast (on a CPU): fp32 master weights, masks exact, fp32 state."""
import pytest
import torch

import methods
from benchmark.engine import train
from benchmark.engine.device import DivergenceGuard, Precision
from benchmark.data.batching import steps_per_epoch, train_batches
from benchmark.data.registry import load_dataset
from benchmark.engine.probe import probe_inputs
from benchmark.spec import RunSpec
from methods.masks import all_prunable_weights

#: No calibration search in a unit test; imp in 2 rounds (0.4² < 0.2) instead of 8.
EXPLICIT = {"grda": {"c": 0.05}, "demp": {"lambda_peak": 1e-3}, "imp": {"prune_fraction": 0.6}}


def _names() -> list[str]:
    return [m for m in methods.available_methods() if m != "dense"] + ["dense"]


@pytest.mark.parametrize("name", _names())
def test_every_method_is_exact_under_bf16_autocast(name):
    target = 0.0 if name == "dense" else 0.8
    base = name.split("+")[0]
    spec = RunSpec(dataset="synthetic", model="lenet5", method=name, target_sparsity=target, seed=0, epochs=2,
                   batch_size=128, lr=0.05, weight_decay=1e-4, method_hparams=EXPLICIT.get(base, {}))
    data = load_dataset("synthetic")
    model, method = train.build(spec, data, torch.device("cpu"))
    plan = method.plan(spec.epochs)
    config = methods.OptimizerConfig(lr=spec.lr, weight_decay=spec.weight_decay)
    optimizer = method.make_optimizer(model, config)
    n_steps = steps_per_epoch(len(data.train), spec.batch_size)
    if method.wants_probe:
        method.set_probe(probe_inputs(data.train))
    method.attach(model, optimizer, n_steps, plan.total_epochs)
    precision = Precision(torch.device("cpu"), enabled=True, cpu_bf16=True)
    assert precision.dtype == torch.bfloat16
    seen_bf16 = []  # training forwards only (the methods' eval-mode probes run in fp32)

    def record(module, inputs, out):
        if module.training:
            seen_bf16.append(out.dtype == torch.bfloat16)
    handle = model.conv1.register_forward_hook(record)
    for epoch in range(plan.total_epochs):
        batches = train_batches(data.train, spec.batch_size, spec.seed, epoch)
        loss, _ = train.train_epoch(model, method, optimizer, precision, batches, epoch * n_steps,
                                    lambda step: spec.lr, DivergenceGuard(torch.device("cpu"), n_steps))
        method.on_epoch_end(epoch)
        assert loss == loss  # finite, not NaN
    handle.remove()
    assert seen_bf16 and all(seen_bf16)  # the convolutions really ran in bf16
    for p in model.parameters():  # master weights stay fp32
        assert p.dtype == torch.float32
    for state in optimizer.state.values():  # so does every optimizer state (momentum, gRDA's dual average)
        for value in state.values():
            if torch.is_tensor(value) and value.dim() > 0:
                assert value.dtype == torch.float32
    weights = all_prunable_weights(model)
    for mask_name, mask in method.masks.items():  # masked weights and their state are exactly zero
        pruned = mask == 0
        assert torch.all(weights[mask_name][pruned] == 0), mask_name
        for value in optimizer.state.get(weights[mask_name], {}).values():
            if torch.is_tensor(value) and value.shape == mask.shape:
                assert torch.all(value[pruned] == 0), mask_name
    if target and method.masks and method.calibration is None:  # grda/demp: sparsity is an outcome
        zeros = sum(int((w == 0).sum()) for w in weights.values())
        assert zeros >= round(target * sum(w.numel() for w in weights.values())) - 1
