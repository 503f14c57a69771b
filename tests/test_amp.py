"""Every registered method under bf16 autocast (on a CPU): fp32 master weights, masks exact, fp32 state."""
import pytest
import torch

import methods
from benchmark.data.registry import load_dataset
from benchmark.engine.device import Precision
from benchmark.spec import RunSpec
from methods.masks import all_prunable_weights
from method_training import train_method

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
    precision = Precision(torch.device("cpu"), enabled=True, cpu_bf16=True)
    assert precision.dtype == torch.bfloat16
    seen_bf16 = []  # training forwards only (the methods' eval-mode probes run in fp32)

    def record(module, inputs, out):
        if module.training:
            seen_bf16.append(out.dtype == torch.bfloat16)
    handles = []
    model, method, optimizer = train_method(
        spec, load_dataset("synthetic"), precision,
        before_training=lambda model: handles.append(model.conv1.register_forward_hook(record)))
    handles[0].remove()
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
