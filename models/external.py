"""Networks from outside the built-in zoo: ``tv:<name>``, ``timm:<name>`` and ``package.module:builder``.

- ``tv:<name>``: any classification builder of ``torchvision.models`` (``tv:resnet18``,
  ``tv:resnet50``, ``tv:mobilenet_v2``, ``tv:vgg16_bn``, …), built untrained with the data set's
  class count and the library's own initialisation.
- ``timm:<name>``: a ``timm`` model (``pip install timm``), ``in_chans`` set to the data's channels.
- ``package.module:builder``: a user's callable ``builder(in_shape, num_classes, activation)``
  returning an ``nn.Module``; the module must be importable (installed or on ``PYTHONPATH``).

**Small and one-channel inputs** (torchvision): the first convolution takes the data's channel
count (a 1-channel Fashion-MNIST image goes into a net built for RGB). ResNet-family networks
(``resnet*``, ``wide_resnet*``, ``resnext*``) get the CIFAR stem when the image is at most 64 px
on a side — a 3×3, stride-1 first convolution and no max-pool, as the CIFAR ResNets of the
pruning literature (GraNet's, RigL's) use: the ImageNet stem would shrink a 32×32 image to 8×8
before the first block. Other families keep their stem (their global pooling accepts small maps).

**Activation sites.** The harness watches hidden units through forward hooks on activation
modules, one module per site (see :mod:`models`). Library networks reuse one module at several
sites (torchvision's ResNet blocks call ``self.relu`` twice) or call activations as functions.
:func:`separate_activations` rewrites the network with ``torch.fx`` so that every site has a
module of its own — the same function, non-in-place — and the unit graph, dead-neuron counts and
MACs see each site once. A network ``torch.fx`` cannot trace (data-dependent control flow) cannot
be rewritten: :func:`build_external` then says so in one line. The ``activation`` setting applies
to user builders only; a library network keeps its own activations (``relu`` is accepted as "as
built", anything else is refused rather than silently ignored).
"""
from __future__ import annotations

import copy
import importlib
from typing import Callable

import torch
import torch.fx as fx
from torch import nn
from torch.nn import functional as F

TORCHVISION_PREFIX = "tv:"
TIMM_PREFIX = "timm:"
#: Image side (px) up to which a torchvision ResNet gets the CIFAR stem.
SMALL_IMAGE = 64
_RESNET_FAMILIES = ("resnet", "wide_resnet", "resnext")
#: Activation functions rewritten into modules (function → module factory).
_FUNCTIONAL = {F.relu: nn.ReLU, torch.relu: nn.ReLU, F.relu6: nn.ReLU6, F.silu: nn.SiLU,
               F.gelu: nn.GELU, F.hardswish: nn.Hardswish, F.leaky_relu: nn.LeakyReLU,
               F.elu: nn.ELU, F.mish: nn.Mish}
_ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Mish,
                       nn.Hardswish)


def is_external(name: str) -> bool:
    """Whether ``name`` names a network outside the registry (``tv:``, ``timm:``, ``module:builder``)."""
    return name.startswith((TORCHVISION_PREFIX, TIMM_PREFIX)) or ":" in name


def build_external(name: str, in_shape: tuple[int, int, int], num_classes: int, activation: str) -> nn.Module:
    """Build ``name`` for ``in_shape`` = (C, H, W) and ``num_classes``, with one activation module per site.

    Raises ``ValueError`` (one line) for an unknown name, a missing package, a builder that is
    not callable or does not return a module, or a network ``torch.fx`` cannot trace.
    """
    if name.startswith(TORCHVISION_PREFIX):
        _library_activation(name, activation)
        model = _torchvision(name[len(TORCHVISION_PREFIX):], in_shape, num_classes)
    elif name.startswith(TIMM_PREFIX):
        _library_activation(name, activation)
        model = _timm(name[len(TIMM_PREFIX):], in_shape, num_classes)
    else:
        model = _user_builder(name)(in_shape, num_classes, activation)
        if not isinstance(model, nn.Module):
            raise ValueError(f"model {name!r}: the builder returned {type(model).__name__}, not an nn.Module")
    return separate_activations(model, name)


def _library_activation(name: str, activation: str) -> None:
    if activation != "relu":
        raise ValueError(f"model {name!r} keeps its own activations; --activation {activation} applies to "
                         "the built-in models and user builders only")


def _torchvision(arch: str, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    from torchvision import models as tv
    available = tv.list_models(module=tv)
    if arch not in available:
        import difflib
        close = difflib.get_close_matches(arch, available, n=1)
        hint = f" (did you mean 'tv:{close[0]}'?)" if close else ""
        raise ValueError(f"unknown torchvision classification model {arch!r}{hint}; see "
                         "torchvision.models.list_models(module=torchvision.models)")
    model = tv.get_model(arch, weights=None, num_classes=num_classes)
    channels, height, width = in_shape
    if arch.startswith(_RESNET_FAMILIES) and max(height, width) <= SMALL_IMAGE:
        model.conv1 = nn.Conv2d(channels, model.conv1.out_channels, kernel_size=3, stride=1, padding=1,
                                bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    elif channels != 3:
        _set_input_channels(model, channels)
    return model


def _set_input_channels(model: nn.Module, channels: int) -> None:
    """Replace the first convolution by one reading ``channels`` channels (same shape otherwise)."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                new = nn.Conv2d(channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, 1 if child.groups == child.in_channels else child.groups,
                                child.bias is not None)
                nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
                setattr(parent, child_name, new)
                return


def _timm(arch: str, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise ValueError(f"model 'timm:{arch}' needs the timm package: pip install timm") from None
    if arch not in timm.list_models():
        raise ValueError(f"unknown timm model {arch!r}; see timm.list_models()")
    return timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_shape[0])


def _user_builder(name: str) -> Callable[..., nn.Module]:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise ValueError(f"model {name!r}: write package.module:builder")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - user code: any failure is one line
        why = f"{type(err).__name__}: {err}"
        raise ValueError(f"model {name!r}: cannot import {module_name}: {why}") from None
    builder = module
    for part in attr.split("."):
        builder = getattr(builder, part, None)
    if not callable(builder):
        raise ValueError(f"model {name!r}: {module_name} has no callable {attr!r}")
    return builder


def separate_activations(model: nn.Module, name: str = "the model") -> nn.Module:
    """The network with one non-in-place activation module per call site (a ``torch.fx`` rewrite).

    A module called at several sites is copied for every site after the first; an activation
    called as a function becomes a module. Parameters, buffers and their names are unchanged, so
    a ``state_dict`` of the original loads into the result. A network in which every site
    already has its own module is returned as it is (in-place flags turned off).
    """
    try:
        traced = fx.symbolic_trace(model)
    except Exception as err:  # noqa: BLE001 - fx raises many types; the user needs one line
        raise ValueError(f"cannot trace {name} with torch.fx, so its activation sites cannot be found "
                         f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    graph, seen, changed = traced.graph, set(), False
    for node in list(graph.nodes):
        if node.op == "call_module" and isinstance(traced.get_submodule(node.target), _ACTIVATION_MODULES):
            if node.target in seen:
                node.target = _add_copy(traced, node.target, copy.deepcopy(traced.get_submodule(node.target)))
                changed = True
            seen.add(node.target)
        elif node.op == "call_function" and node.target in _FUNCTIONAL:
            module = _functional_module(node)
            with graph.inserting_after(node):
                target = _add_copy(traced, node.name, module)
                replacement = graph.call_module(target, (node.args[0],))
            node.replace_all_uses_with(replacement)
            graph.erase_node(node)
            changed = True
    for module in traced.modules():
        if isinstance(module, _ACTIVATION_MODULES) and getattr(module, "inplace", False):
            module.inplace = False
    if not changed:
        for module in model.modules():
            if getattr(module, "inplace", False) and isinstance(module, _ACTIVATION_MODULES):
                module.inplace = False
        return model
    graph.lint()
    traced.recompile()
    return traced


def _functional_module(node: fx.Node) -> nn.Module:
    factory = _FUNCTIONAL[node.target]
    if factory is nn.LeakyReLU:
        slope = node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01)
        return nn.LeakyReLU(float(slope))
    if factory is nn.GELU:
        return nn.GELU(approximate=node.kwargs.get("approximate", "none"))
    return factory()


def _add_copy(traced: fx.GraphModule, target: str, module: nn.Module) -> str:
    """Register ``module`` under ``target`` if that name is free, else beside it as ``<target>_site<k>``;
    returns the name used."""
    parent, _, leaf = target.rpartition(".")
    prefix = f"{parent}.{leaf}" if parent else leaf
    candidates = [target] + [f"{prefix}_site{k}" for k in range(1, 10_000)]
    for candidate in candidates:
        try:
            traced.get_submodule(candidate)
        except AttributeError:
            traced.add_submodule(candidate, module)
            return candidate
    raise ValueError(f"no free module name beside {target!r}")
