"""``RunSpec``: one cell of a grid with one seed, and the grid planner.

The run id is a hash of the *semantic* fields — the ones that change what is computed. Where a
run executes (device, data root, workers) is not semantic. The CPU thread count is: on a CPU the
reduction order of matrix products depends on it, so the same run with 1 and 2 threads gives
different numbers, and a grid resumed with another thread count must not mix them. Method
hyperparameters enter the id fully resolved (defaults included), so changing a method's default
re-runs it instead of silently reusing stale results. The hash is pinned by a test: renaming a field fails CI.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

#: Fields that define what a run computes, in hashing order.
SEMANTIC_FIELDS = (
    "dataset", "model", "activation", "method", "method_hparams", "target_sparsity", "seed",
    "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "lr_schedule",
    "warmup_epochs", "val_fraction", "threads",
)
_FLOAT_FIELDS = {"target_sparsity", "lr", "momentum", "weight_decay", "val_fraction"}
_INT_FIELDS = {"seed", "epochs", "batch_size", "warmup_epochs", "threads"}


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run needs. Frozen and JSON-serialisable."""
    dataset: str = "fashion-mnist"
    model: str = "mlp"
    activation: str = "relu"
    method: str = "dense"
    method_hparams: dict[str, Any] = field(default_factory=dict)
    target_sparsity: float = 0.0
    seed: int = 0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"
    warmup_epochs: int = 0
    val_fraction: float = 0.0
    threads: int = 1  # CPU threads the run computes with (torch.set_num_threads)
    # where and how it runs: not part of the id
    data_root: str | None = None
    device: str = "auto"
    amp: bool = True
    eval_every: int = 1
    checkpoint_every: int = 0
    compile: bool = False

    def semantic(self) -> dict[str, Any]:
        """The fields that identify the run, in a canonical JSON-ready form."""
        out = {}
        for name in SEMANTIC_FIELDS:
            value = getattr(self, name)
            if name == "method_hparams":
                value = {k: value[k] for k in sorted(value)}
            elif name in _FLOAT_FIELDS:
                value = float(value)
            elif name in _INT_FIELDS:
                value = int(value)
            out[name] = value
        return out

    @property
    def run_id(self) -> str:
        """12 hex characters of the SHA-256 of the semantic fields."""
        return _digest(self.semantic())

    @property
    def cell_id(self) -> str:
        """Like ``run_id`` but without the seed: runs of one cell differ only by seed."""
        fields = self.semantic()
        del fields["seed"]
        return _digest(fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def describe(self) -> str:
        """Short human-readable name: ``gmp s=0.9 seed=1``."""
        return f"{self.method} s={self.target_sparsity:g} seed={self.seed}"


def _digest(fields: dict[str, Any]) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_grid(methods: Sequence[str], sparsities: Sequence[float], seeds: Sequence[int],
              hparams: dict[str, dict[str, Any]], **common: Any) -> list[RunSpec]:
    """Every (method × sparsity × seed) run; ``dense`` once per seed at sparsity 0.

    ``hparams`` maps a method name to its resolved hyperparameters; ``common`` holds the shared
    RunSpec fields (dataset, model, epochs, …). Duplicates are removed, order is kept:
    method-major, then sparsity, then seed.
    """
    specs: list[RunSpec] = []
    seen: set[str] = set()
    for method in methods:
        targets: Iterable[float] = [0.0] if method == "dense" else sparsities
        for sparsity in targets:
            for seed in seeds:
                spec = RunSpec(method=method, method_hparams=dict(hparams.get(method, {})),
                               target_sparsity=float(sparsity), seed=int(seed), **common)
                if spec.run_id not in seen:
                    seen.add(spec.run_id)
                    specs.append(spec)
    return specs
