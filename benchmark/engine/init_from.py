"""Starting from trained weights (``--init-from``): read them, name them, check them, load them.

Two sources. A file holding a ``state_dict`` — plain (``torch.save(model.state_dict(), path)``) or
under ``"state_dict"`` or ``"model"`` as training checkpoints keep it (a prunebench checkpoint
too) — is named by the SHA-256 of its bytes, so the same file anywhere is the same run and an
edited file is another. ``tv-weights:NAME`` is torchvision's published weights for a ``tv:`` model
(``DEFAULT``, a member such as ``IMAGENET1K_V1``, or a full ``ResNet18_Weights.IMAGENET1K_V1``),
named by the member ``DEFAULT`` resolves to. Files are read with ``weights_only=True``: no code in
a downloaded file runs.

Keys and shapes must match the model exactly, with one exception for ``tv-weights:`` (the transfer
protocol of fine-tuning an ImageNet network on another data set): when the model's classifier (its
last ``nn.Linear``, :func:`methods.masks.classifier_name`) has another number of outputs than the
published one (1000 ImageNet classes), its ``weight`` and ``bias`` are not loaded and keep the
model's own seeded initialisation — the same for every method of a seed — while every other tensor
is loaded strictly. A file's weights are always loaded strictly: a mismatch there is a mistake.

The CLI reads, names and checks the weights once when it plans the grid (:func:`read_weights`,
:func:`fit_problem`); every run loads them again (:func:`load_initial_weights`) and fails with a
clear error when the file is no longer the one planned.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from benchmark.spec import RunSpec
from methods.masks import classifier_name
from models.external import TORCHVISION_PREFIX

#: ``--init-from tv-weights:NAME``: torchvision's published weights.
TV_WEIGHTS = "tv-weights:"
#: ``RunSpec.init_weights`` of a file: its SHA-256.
SHA256 = "sha256:"
#: Keys shown per kind of mismatch before "and N more".
SHOWN_KEYS = 3
#: Where a checkpoint keeps the model's ``state_dict`` (tried in this order).
NESTED_KEYS = ("state_dict", "model")

StateDict = Mapping[str, torch.Tensor]


class InitFromError(ValueError):
    """Weights that cannot be read, named or loaded into the model (a one-line message)."""


class PublishedStateDict(dict):
    """torchvision's published ``state_dict``, knowing the module name of its classifier (the last
    ``nn.Linear``; None if it has none): the one layer whose size may differ from the model's. Keeps
    the ``_metadata`` (module versions) ``load_state_dict`` reads."""

    def __init__(self, state: StateDict, classifier: str | None):
        super().__init__(state)
        self.classifier = classifier
        metadata = getattr(state, "_metadata", None)
        if metadata is not None:
            self._metadata = metadata


@dataclass(frozen=True)
class InitialWeights:
    """Weights a grid starts from: where they are, what they are, and the tensors."""
    source: str  #: absolute path of the file, or ``tv-weights:NAME`` as given
    identity: str  #: ``sha256:<hex>`` or ``tv-weights:<Enum>.<MEMBER>`` (``RunSpec.init_weights``)
    state_dict: dict[str, torch.Tensor]

    def spec_fields(self) -> dict[str, str]:
        """The ``RunSpec`` fields that make runs start from these weights (``plan_grid(**...)``)."""
        return {"init_from": self.source, "init_weights": self.identity}


def read_weights(source: str, model_name: str) -> InitialWeights:
    """Read and name ``--init-from``'s weights for a model named ``model_name``; InitFromError if not."""
    if source.startswith(TV_WEIGHTS):
        weights = resolve_tv_weights(model_name, source[len(TV_WEIGHTS):])
        state = PublishedStateDict(fetch_tv_state_dict(weights), tv_classifier(model_name))
        return InitialWeights(source, tv_identity(weights), state)
    if not source.strip():
        raise InitFromError("--init-from must name a file (or tv-weights:NAME)")
    path = Path(source).expanduser().resolve()
    data = _read_bytes(path)
    return InitialWeights(str(path), SHA256 + hashlib.sha256(data).hexdigest(), state_dict_of(data, path))


def load_initial_weights(model: torch.nn.Module, spec: RunSpec) -> None:
    """Load the weights ``spec`` starts from into ``model`` (strict keys and shapes); nothing without.

    A file must still hash to ``spec.init_weights``: one changed since the grid was planned is an
    error, not a run with other numbers under the old id. ``tv-weights:`` on a model whose classifier
    has another number of outputs (a data set without ImageNet's 1000 classes) follow the transfer
    protocol: the classifier's ``weight`` and ``bias`` (:func:`replaced_head`) keep the model's own
    seeded initialisation; every other tensor is loaded, all keys and shapes matching.
    """
    if spec.init_weights is None:
        if spec.init_from is not None:
            raise InitFromError(f"init_from={spec.init_from!r} without init_weights: set both with "
                                "benchmark.engine.init_from.read_weights(...).spec_fields() (the CLI does)")
        return
    if spec.init_weights.startswith(TV_WEIGHTS):
        from torchvision.models import get_weight
        source = spec.init_weights
        state = PublishedStateDict(fetch_tv_state_dict(get_weight(spec.init_weights[len(TV_WEIGHTS):])),
                                   classifier_name(model))
    elif spec.init_weights.startswith(SHA256) and spec.init_from is not None:
        path = Path(spec.init_from)
        source = str(path)
        data = _read_bytes(path)
        digest = SHA256 + hashlib.sha256(data).hexdigest()
        if digest != spec.init_weights:
            raise InitFromError(f"--init-from {path} changed since the grid was planned (its {digest[:19]}… "
                                f"is not the planned {spec.init_weights[:19]}…): rerun the command to plan "
                                "runs from the new file")
        state = state_dict_of(data, path)
    else:
        raise InitFromError(f"init_weights={spec.init_weights!r} is neither {SHA256}<hex> with init_from "
                            f"nor {TV_WEIGHTS}<Enum>.<MEMBER>")
    own = model.state_dict()
    problem = fit_problem(own, state)
    if problem:
        raise InitFromError(f"--init-from {source} does not fit model {spec.model}: {problem}")
    for key in replaced_head(own, state):  # the model's own tensor: loading it changes nothing
        state[key] = own[key]
    model.load_state_dict(state, strict=True)


def state_dict_of(data: bytes, path: Path | str) -> dict[str, torch.Tensor]:
    """The ``state_dict`` in a file's bytes: plain, or under ``"state_dict"`` or ``"model"``."""
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InitFromError(f"--init-from {path} cannot be read by torch.load(weights_only=True): it is not "
                            "a torch.save file, or it holds Python objects (a whole pickled model?); save "
                            "model.state_dict() instead") from None
    except Exception as err:  # noqa: BLE001 - truncated or foreign files raise many kinds
        raise InitFromError(f"--init-from {path} cannot be read by torch.load: "
                            f"{type(err).__name__}: {_first_line(err)}") from None
    if _is_state_dict(loaded):
        return dict(loaded)
    if isinstance(loaded, dict):
        for key in NESTED_KEYS:
            if _is_state_dict(loaded.get(key)):
                return dict(loaded[key])
    raise InitFromError(f"--init-from {path} holds no state_dict: expected a dict of tensors, or one under "
                        f"{' or '.join(repr(k) for k in NESTED_KEYS)}")


def fit_problem(expected: StateDict, given: StateDict) -> str | None:
    """Which keys of ``given`` are missing, unexpected or of another shape than ``expected``'s (a
    few of each, then "and N more"), in one line; None when every key and shape matches.

    ``expected`` may live on the ``meta`` device: only shapes are compared. The classifier of
    published weights (:class:`PublishedStateDict`) may have another number of outputs
    (:func:`replaced_head`): the model keeps its own there.
    """
    replaced = set(replaced_head(expected, given))
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [f"{k} (file {_shape(given[k])}, model {_shape(expected[k])})" for k in expected
                  if k in given and k not in replaced and tuple(given[k].shape) != tuple(expected[k].shape)]
    kinds = (("missing key", "missing keys", missing), ("unexpected key", "unexpected keys", unexpected),
             ("shape mismatch", "shape mismatches", mismatched))
    parts = [f"{len(items)} {one if len(items) == 1 else many}: {_few(items)}"
             for one, many, items in kinds if items]
    return "; ".join(parts) or None


def replaced_head(expected: StateDict, given: StateDict) -> tuple[str, ...]:
    """Keys the model keeps its own initialisation for (the transfer protocol): the ``weight`` and
    ``bias`` of the classifier of published weights (``given`` a :class:`PublishedStateDict`) when only
    its number of outputs differs from the model's — ``weight`` (N, F) for (M, F), ``bias`` (N,) for (M,)
    or absent from both. Nothing otherwise: a file's weights, or a classifier that fits or differs in
    another way (its inputs), is checked and loaded strictly.
    """
    head = getattr(given, "classifier", None)
    if head is None:
        return ()
    weight, bias = f"{head}.weight", f"{head}.bias"
    if weight not in expected or weight not in given:
        return ()
    new, old = tuple(expected[weight].shape), tuple(given[weight].shape)
    if len(new) != 2 or len(old) != 2 or new[1] != old[1] or new[0] == old[0]:
        return ()
    if (bias in expected) != (bias in given):
        return ()
    if bias not in given:
        return (weight,)
    if tuple(expected[bias].shape) != new[:1] or tuple(given[bias].shape) != old[:1]:
        return ()
    return weight, bias


def tv_classifier(model_name: str) -> str | None:
    """Module name of the classifier of torchvision model ``tv:<arch>`` (built on ``meta``: no memory)."""
    from torchvision.models import get_model
    with torch.device("meta"):
        return classifier_name(get_model(model_name[len(TORCHVISION_PREFIX):], weights=None))


def resolve_tv_weights(model_name: str, name: str) -> Any:
    """torchvision's ``WeightsEnum`` member for ``tv-weights:NAME`` on model ``tv:<arch>`` (no network).

    ``NAME`` is ``DEFAULT``, a member of the model's enum (``IMAGENET1K_V1``), or a full name
    (``ResNet18_Weights.IMAGENET1K_V1``), resolved with ``torchvision.models.get_weight``.
    """
    given = f"--init-from {TV_WEIGHTS}{name}"
    if not name:
        raise InitFromError(f"{given} needs a weights name (e.g. {TV_WEIGHTS}DEFAULT)")
    if not model_name.startswith(TORCHVISION_PREFIX):
        raise InitFromError(f"{given} needs a torchvision model (--model {TORCHVISION_PREFIX}<name>), "
                            f"not --model {model_name}")
    from torchvision.models import get_model_weights, get_weight
    arch = model_name[len(TORCHVISION_PREFIX):]
    try:
        enum = get_model_weights(arch)
    except (ValueError, KeyError, AttributeError) as err:
        raise InitFromError(f"{given}: torchvision has no published weights for {arch!r} "
                            f"({_first_line(err)})") from None
    full = name if "." in name else f"{enum.__name__}.{name}"
    try:
        weights = get_weight(full)
    except (ValueError, KeyError):
        raise InitFromError(f"{given}: unknown weights {full!r}; choose from: DEFAULT, "
                            f"{', '.join(member.name for member in enum)}") from None
    if type(weights) is not enum:
        raise InitFromError(f"{given}: {full} are not weights of {arch} (its weights are {enum.__name__})")
    return weights


def tv_identity(weights: Any) -> str:
    """``tv-weights:<Enum>.<MEMBER>`` of a resolved member (``DEFAULT`` named by what it stands for)."""
    return f"{TV_WEIGHTS}{type(weights).__name__}.{weights.name}"


def fetch_tv_state_dict(weights: Any) -> dict[str, torch.Tensor]:
    """torchvision's published weights (downloaded once into torch's hub cache); offline, one line
    saying they cannot be fetched and how to pass a downloaded file instead."""
    try:
        return weights.get_state_dict(progress=False)
    except (OSError, http.client.HTTPException) as err:  # URLError and socket errors are OSErrors
        raise InitFromError(f"torchvision's weights {tv_identity(weights)[len(TV_WEIGHTS):]} cannot be "
                            f"fetched (offline? {type(err).__name__}: {_first_line(err)}): download "
                            f"{weights.url} where there is a network and pass --init-from PATH with the "
                            "file") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InitFromError(f"--init-from {path}: no such file") from None
    except OSError as err:
        raise InitFromError(f"--init-from {path} cannot be read: {err.strerror or err}") from None


def _is_state_dict(value: Any) -> bool:
    return (isinstance(value, dict) and len(value) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()))


def _few(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_KEYS])
    return shown if len(items) <= SHOWN_KEYS else f"{shown} and {len(items) - SHOWN_KEYS} more"


def _shape(tensor: torch.Tensor) -> str:
    return "×".join(map(str, tensor.shape)) or "scalar"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
