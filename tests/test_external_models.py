"""Networks by name and import path: ``tv:``, ``package.module:builder``, one activation module per site,
and every method training a few steps on torchvision's ResNet-18 and MobileNet-V2."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.cli import main
from benchmark.data.containers import Dataset, Split
from benchmark.engine.device import Precision
from benchmark.spec import RunSpec
from methods.activations import activation_modules
from methods.masks import all_prunable_weights
from methods.units import unit_groups
from models import get_model
from models.external import separate_activations
from method_training import train_method

EXPLICIT = {"grda": {"c": 0.05}, "demp": {"lambda_peak": 1e-3}, "imp": {"prune_fraction": 0.6}}
BASES = ["magnitude", "random", "gmp", "imp", "granet", "granet-st", "rigl", "set", "grda", "dnr", "demp"]


class SharedAndFunctional(nn.Module):
    """One ReLU module called at two sites, and an activation called as a function."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(4, 5), nn.Linear(5, 5), nn.Linear(5, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu(self.fc1(x.flatten(1)))
        x = self.relu(self.fc2(x))
        return self.fc3(F.relu6(x))


def builder(in_shape, num_classes, activation):
    """A user's builder for ``--model tests.test_external_models:builder``."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1] * in_shape[2], 12),
                         nn.ReLU(), nn.Linear(12, num_classes))


def calls_per_module(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    calls = {name: 0 for name in activation_modules(model)}
    handles = [m.register_forward_hook(lambda mod, i, o, n=name: calls.__setitem__(n, calls[n] + 1))
               for name, m in activation_modules(model).items()]
    model(x)
    for h in handles:
        h.remove()
    return calls


def test_every_activation_site_gets_a_module_of_its_own_and_the_function_is_unchanged():
    torch.manual_seed(0)
    model = SharedAndFunctional()
    x = torch.randn(6, 1, 2, 2)
    expected = model(x.clone())
    rewritten = separate_activations(model)
    assert torch.equal(rewritten(x.clone()), expected)
    assert calls_per_module(rewritten, x) == {"relu": 1, "relu_site1": 1, "relu6": 1}
    assert not any(getattr(m, "inplace", False) for m in rewritten.modules())
    assert list(rewritten.state_dict()) == list(model.state_dict())  # a trained state_dict still loads
    assert isinstance(rewritten.relu6, nn.ReLU6)


def test_torchvision_resnet18_gets_the_cifar_stem_and_one_activation_per_site():
    torch.manual_seed(0)
    model = get_model("tv:resnet18", (1, 28, 28), 10)
    assert (model.conv1.in_channels, model.conv1.kernel_size, model.conv1.stride) == (1, (3, 3), (1, 1))
    assert isinstance(model.maxpool, nn.Identity)
    x = torch.randn(2, 1, 28, 28)
    assert model(x).shape == (2, 10)
    calls = calls_per_module(model, x)
    assert len(calls) == 17 and set(calls.values()) == {1}  # stem + 2 per block × 8 blocks
    groups = unit_groups(model)
    # a unit behind an identity shortcut is watched, never pruned: 8 blocks' second ReLU minus the
    # three that follow a projection shortcut
    assert sum(g.prunable for g in groups) == 17 - 5


def test_imagenet_sized_inputs_keep_the_imagenet_stem():
    with torch.device("meta"):
        model = get_model("tv:resnet18", (3, 96, 96), 10)
    assert model.conv1.stride == (2, 2) and isinstance(model.maxpool, nn.MaxPool2d)


def tiny_dataset() -> Dataset:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, 32, 32, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    return Dataset(name="tiny-rgb", train=Split(x, y), test=Split(x[:8], y[:8]), val=None, num_classes=10,
                   in_shape=(3, 32, 32), augment=False, source="generated")


@pytest.mark.parametrize("model_name", ["tv:resnet18", "tv:mobilenet_v2"])
@pytest.mark.parametrize("name", BASES + ["gmp+ap"])
def test_every_method_trains_on_torchvision_networks(model_name, name):
    torch.set_num_threads(1)
    target = 0.5
    spec = RunSpec(dataset="tiny-rgb", model=model_name, method=name, target_sparsity=target, seed=0,
                   epochs=1, batch_size=8, lr=0.01, weight_decay=1e-4, method_hparams=EXPLICIT.get(name, {}))
    model, method, _ = train_method(spec, tiny_dataset(), Precision(torch.device("cpu"), enabled=False))
    weights = all_prunable_weights(model)
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    total = sum(w.numel() for w in weights.values())
    if method.calibration is None and name != "imp":  # gRDA/DemP: an outcome of c/λ; IMP: one round here
        assert zeros >= round(target * total) - 1


def test_the_cli_runs_a_user_builder_and_refuses_what_cannot_run(tmp_path, capsys):
    fast = ["--dataset", "synthetic", "--methods", "gmp", "--sparsities", "0.5", "--seeds", "0",
            "--epochs", "1", "--executor", "inline", "--no-plots", "--no-progress",
            "--out", str(tmp_path / "res")]
    assert main(["--model", "tests.test_external_models:builder", *fast]) == 0
    capsys.readouterr()
    for model, message in [
            ("tv:vgg11_bn", "model 'tv:vgg11_bn' cannot take 1×28×28 inputs of synthetic: "),
            ("tv:resnet1", "unknown torchvision classification model 'resnet1' "
                           "(did you mean 'tv:resnet18'?)"),
            ("no_such_package.nets:build", "model 'no_such_package.nets:build': cannot import "
                                           "no_such_package"),
            ("tests.test_external_models:nothing", "has no callable 'nothing'")]:
        assert main(["--model", model, *fast]) == 2, model
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert main(["--model", "tv:resnet18", "--activation", "swish", *fast]) == 2
    assert "keeps its own activations" in capsys.readouterr().err


def test_a_timm_network_without_timm_is_one_clear_line():
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"'timm:resnet18' needs the timm package: pip install timm"):
            get_model("timm:resnet18", (3, 32, 32), 10)
    else:
        with torch.device("meta"):
            model = get_model("timm:resnet18", (3, 32, 32), 10)
        assert len(activation_modules(model)) >= 17
