"""Tests for the ``models`` package: registry, architectures and the conventions the pruning harness uses."""
from __future__ import annotations

from typing import Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model_cases import (GRAY, MODELS, PRUNABLE_COUNTS, RGB, build, n_params, one_thread_then_clear_cache,
                         prunable, shared, small_shape)
from models import available_activations, available_models, get_model, model_descriptions
from models.activations import make_activation
from models.resnet_cifar import PadShortcut


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_thread_then_clear_cache()

# --------------------------------------------------------------------------- registry


def test_registry_names() -> None:
    assert available_models() == MODELS
    assert available_activations() == ["leaky_relu", "relu", "swish"]
    descriptions = model_descriptions()
    assert list(descriptions) == MODELS
    for text in descriptions.values():
        assert isinstance(text, str) and text.strip() and "\n" not in text


def test_unknown_model_raises_with_choices() -> None:
    with pytest.raises(ValueError) as info:
        get_model("resnet99", RGB, 10)
    assert str(info.value) == ("unknown model 'resnet99'; choose from: lenet5, mlp, resnet18, resnet20, "
                               "resnet56, vgg16, or tv:<torchvision name>, timm:<timm name>, "
                               "package.module:builder")


def test_unknown_activation_raises_with_choices() -> None:
    with pytest.raises(ValueError) as info:
        get_model("mlp", GRAY, 10, activation="gelu")
    assert str(info.value) == "unknown activation 'gelu'; choose from: leaky_relu, relu, swish"
    with pytest.raises(ValueError, match="'tanh'.*leaky_relu, relu, swish"):
        make_activation("tanh")


@pytest.mark.parametrize("in_shape, num_classes", [
    ((28, 28), 10), ((1, 0, 28), 10), ((1.0, 28, 28), 10), (None, 10), (GRAY, 1), (GRAY, 2.0), (GRAY, True),
])
def test_bad_shape_or_classes_raise(in_shape: tuple, num_classes: object) -> None:
    with pytest.raises(ValueError):
        get_model("mlp", in_shape, num_classes)


def test_integer_like_arguments_accepted() -> None:
    model = get_model("mlp", torch.Size(GRAY), torch.tensor(4))
    assert model(torch.randn(2, *GRAY)).shape == (2, 4)


def test_lenet5_rejects_too_small_input() -> None:
    with pytest.raises(ValueError, match="at least 12x12"):
        get_model("lenet5", (1, 8, 8), 10)
    get_model("lenet5", (1, 12, 12), 10)


# --------------------------------------------------------------------------- sizes and shapes


@pytest.mark.parametrize("name, in_shape, expected, published", [
    ("mlp", GRAY, 266_610, 266_610),            # LeNet-300-100: 784*300+300 + 300*100+100 + 100*10+10
    ("lenet5", GRAY, 61_706, 61_706),
    ("resnet20", RGB, 269_722, 0.27e6),         # He et al. 2016, Table 6
    ("resnet56", RGB, 853_018, 0.85e6),
    ("resnet18", RGB, 11_173_962, 11.17e6),     # usual CIFAR ResNet-18 figure
    ("vgg16", RGB, 14_724_042, 14.7e6),         # VGG-16-BN, GAP + Linear(512, 10)
])
def test_parameter_counts(name: str, in_shape: Tuple[int, int, int], expected: int, published: float) -> None:
    count = n_params(build(name, in_shape, 10))
    assert count == expected
    assert abs(count - published) / published < 0.02


@pytest.mark.parametrize("name", MODELS)
def test_prunable_layer_counts(name: str) -> None:
    model = shared(name)
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert (convs, linears) == PRUNABLE_COUNTS[name]


ODD = (3, 17, 17)  # odd sides: the option-A subsampling must match the stride-2 conv output size


@pytest.mark.parametrize("name, in_shape", [(n, s) for n in MODELS for s in (GRAY, RGB, ODD)
                                            if not (n == "resnet18" and s == ODD)])
def test_output_shape(name: str, in_shape: Tuple[int, int, int]) -> None:
    # A non-square shape is covered by test_first_layer_and_classifier.
    model = build(name, in_shape, num_classes=7)
    with torch.no_grad():
        out = model(torch.randn(2, *in_shape))
    assert out.shape == (2, 7)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_vgg_small_input_rule() -> None:
    def pools(in_shape: Tuple[int, int, int]) -> int:
        return sum(isinstance(m, nn.MaxPool2d) for m in build("vgg16", in_shape).modules())

    assert pools(RGB) == 5     # 32 -> 16 -> 8 -> 4 -> 2 -> 1
    assert pools(GRAY) == 4    # 28 -> 14 -> 7 -> 3 -> 1, fifth pool skipped
    assert pools((3, 8, 8)) == 3


def test_option_a_shortcut_pads_zeros() -> None:
    shortcut = PadShortcut(16, 32, stride=2)
    assert not list(shortcut.parameters())
    x = torch.randn(2, 16, 7, 7, dtype=torch.bfloat16)
    out = shortcut(x)
    assert out.shape == (2, 32, 4, 4) and out.dtype == torch.bfloat16
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


# --------------------------------------------------------------------------- layer conventions


@pytest.mark.parametrize("name", MODELS)
def test_first_layer_and_classifier(name: str) -> None:
    in_shape = (2, 20, 24)
    model = build(name, in_shape, num_classes=7)
    layers = prunable(model)
    first = layers[0]
    if isinstance(first, nn.Conv2d):
        assert first.in_channels == 2
    else:
        assert first.in_features == 2 * 20 * 24
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert classifier is layers[-1]
    assert classifier.out_features == 7
    captured = []
    handle = classifier.register_forward_hook(lambda mod, i, o: captured.append(o))
    with torch.no_grad():
        out = model(torch.randn(2, *in_shape))
    handle.remove()
    assert out.shape == (2, 7)
    assert len(captured) == 1 and captured[0] is out


@pytest.mark.parametrize("name", MODELS)
def test_biases(name: str) -> None:
    model = shared(name)
    modules = list(model.modules())
    for i, module in enumerate(modules):
        if isinstance(module, nn.Conv2d):
            followed_by_bn = i + 1 < len(modules) and isinstance(modules[i + 1], nn.BatchNorm2d)
            assert (module.bias is None) == followed_by_bn
        elif isinstance(module, nn.Linear):
            assert module.bias is not None


@pytest.mark.parametrize("name", MODELS)
def test_every_module_is_used(name: str) -> None:
    model = shared(name)
    leaves = [m for m in model.modules() if not list(m.children())]
    used = set()
    handles = [m.register_forward_hook(lambda mod, i, o: used.add(id(mod))) for m in leaves]
    with torch.no_grad():
        model(torch.randn(2, *small_shape(name)))
    for h in handles:
        h.remove()
    assert used == {id(m) for m in leaves}


# --------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize("name", MODELS)
def test_seed_determinism(name: str) -> None:
    shape = small_shape(name)
    a, b, c = build(name, shape, seed=1), build(name, shape, seed=1), shared(name)  # shared: seed 0
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    for la, lc in zip(prunable(a), prunable(c)):
        assert not torch.equal(la.weight, lc.weight)


def test_initialisation() -> None:
    model = build("resnet56", RGB)
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.weight.numel() >= 9000:
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            std = module.weight.std().item()
            assert abs(std - (2.0 / fan_out) ** 0.5) < 0.1 * (2.0 / fan_out) ** 0.5
        elif isinstance(module, nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
        elif isinstance(module, nn.Linear):  # PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = module.in_features ** -0.5
            assert module.weight.abs().max() <= bound and module.bias.abs().max() <= bound
    lenet = build("lenet5", GRAY)
    assert not lenet.conv1.bias.any() and not lenet.conv2.bias.any()


# --------------------------------------------------------------------------- training and devices


@pytest.mark.parametrize("name", MODELS)
def test_backward(name: str) -> None:
    shape = small_shape(name)
    model = build(name, shape, num_classes=5)
    loss = F.cross_entropy(model(torch.randn(2, *shape)), torch.tensor([0, 3]))
    loss.backward()
    for layer in prunable(model):
        grad = layer.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_cpu_autocast(name: str) -> None:
    shape = small_shape(name)
    model = shared(name)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out.float()).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", MODELS)
def test_cuda_autocast(name: str) -> None:
    shape = small_shape(name)
    model = build(name, shape).cuda()
    x = torch.randn(2, *shape, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        out = model(x)
    assert out.device.type == "cuda" and out.shape == (2, 10) and torch.isfinite(out.float()).all()
    F.cross_entropy(out.float(), torch.tensor([1, 2], device="cuda")).backward()
    assert all(layer.weight.grad is not None for layer in prunable(model))
