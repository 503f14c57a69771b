"""``RunSpec``: one cell of a grid with one seed, and the grid planner.

The run id is a hash of the *semantic* fields — the ones that change what is computed. Where a
run executes (device, data root, workers) is not semantic. The CPU thread count is: on a CPU the
reduction order of matrix products depends on it, so the same run with 1 and 2 threads gives
different numbers, and a grid resumed with another thread count must not mix them. Method
hyperparameters enter the id fully resolved (defaults included), so changing a method's default
re-runs it instead of silently reusing stale results. The hash is pinned by a test: renaming a field fails CI.

A semantic field that is ``None`` (or its declared ``neutral`` value) is left out of the hash: a
setting added after results exist (``init_weights``, ``procs_per_run``) changes no run id until it is
used. ``--init-from`` is two fields: where the
weights are (``init_from``, a path or ``tv-weights:NAME``; not semantic, so a copied file is the
same run) and what they are (``init_weights``, ``sha256:<hex>`` of the file's bytes or the
resolved ``tv-weights:<Enum>.<NAME>``; semantic), which the CLI fills in when it plans the grid.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence


def setting(default: Any = dataclasses.MISSING, help: str = "", *, semantic: bool, group: str | None = None,
            low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False, default_factory: Any = dataclasses.MISSING,
            neutral: Any = None) -> Any:
    """A ``RunSpec`` field with everything the rest of the harness derives from it.

    ``semantic`` puts it in the run id; ``group`` (``data``, ``training``, ``execution``) makes it a
    CLI flag in that group (``--batch-size`` for ``batch_size``), resolved flag → preset → this
    default; ``low``/``high`` bound it (open ends with ``low_open``/``high_open``), checked with
    one line naming the flag. Fields without a group (method, sparsity, seed) come from the grid.
    A semantic field equal to ``neutral`` (or None) is left out of the run id, like an unset one.
    """
    metadata = {"semantic": semantic, "group": group, "help": help, "neutral": neutral,
                "bounds": (low, high, low_open, high_open) if low is not None or high is not None else None}
    return field(default=default, default_factory=default_factory, metadata=metadata)


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run needs. Frozen and JSON-serialisable.

    This is the one table of a run's settings: the run-id keys (:data:`SEMANTIC_FIELDS`), the CLI's
    data, training and execution flags, and the defaults a preset does not set all come from the
    fields' :func:`setting` metadata. The hashing order is the declaration order.
    """
    dataset: str = setting("fashion-mnist", "data set (see --list)", semantic=True, group="data")
    model: str = setting("mlp", "model (see --list)", semantic=True, group="data")
    activation: str = setting("relu", "hidden activation", semantic=True, group="data")
    method: str = setting("dense", semantic=True)
    method_hparams: dict[str, Any] = setting(semantic=True, default_factory=dict)
    target_sparsity: float = setting(0.0, semantic=True)
    seed: int = setting(0, semantic=True)
    epochs: int = setting(10, "epochs per run (IMP trains this per round)", semantic=True, group="training",
                          low=1)
    batch_size: int = setting(128, "examples per optimizer step", semantic=True, group="training", low=1)
    lr: float = setting(0.1, "peak learning rate", semantic=True, group="training", low=0, low_open=True)
    momentum: float = setting(0.9, "SGD momentum", semantic=True, group="training", low=0, high=1,
                              high_open=True)
    nesterov: bool = setting(False, "Nesterov momentum", semantic=True, group="training")
    weight_decay: float = setting(5e-4, "L2 weight decay", semantic=True, group="training", low=0)
    lr_schedule: str = setting("cosine", "learning-rate schedule", semantic=True,
                               group="training")
    warmup_epochs: int = setting(0, "linear LR warm-up epochs", semantic=True, group="training", low=0)
    #: Image side of ``folder:`` data sets (None: 224); left out of the run id when unset.
    image_size: int | None = setting(None, "image side for --dataset folder:<path> (default 224): training "
                                     "crops and evaluation centre crops are this size", semantic=True,
                                     group="data", low=8)
    val_fraction: float = setting(0.0, "share of the training set held out for validation", semantic=True,
                                  group="data", low=0, high=1, high_open=True)
    #: CPU threads the run computes with (torch.set_num_threads): on a CPU the numbers depend on it.
    threads: int = setting(1, "CPU threads per run (default: cores ÷ concurrent runs); part of the run id, "
                           "because results on a CPU depend on it", semantic=True, group="execution", low=1)
    #: Processes computing one run with distributed data parallel (1: no DDP, left out of the run id).
    procs_per_run: int = setting(1, "processes per run, each on its own GPU (on a CPU: gloo processes "
                                 "sharing the cores), with distributed data parallel over the global "
                                 "batch; part of the run id when above 1 (each process normalises "
                                 "BatchNorm over its share of the batch)", semantic=True, group="execution",
                                 low=1, neutral=1)
    #: What the run starts from (None: the seeded initialisation): ``sha256:<hex>`` of the ``init_from``
    #: file, or ``tv-weights:<Enum>.<NAME>``. Set by the planner (:mod:`benchmark.engine.init_from`).
    init_weights: str | None = setting(None, semantic=True)
    # where and how it runs: not part of the id
    data_root: str | None = setting(None, "folder with the data set files", semantic=False, group="data")
    data_workers: int = setting(2, "DataLoader worker processes decoding a folder: data set's images (0: in "
                                "the run's own process)", semantic=False, group="data", low=0)
    init_from: str | None = setting(None, "start every run from these weights instead of the seeded "
                                    "initialisation: a state_dict file (its SHA-256 is part of the run "
                                    "id) or tv-weights:NAME (torchvision's published weights, e.g. "
                                    "tv-weights:DEFAULT)", semantic=False, group="training")
    device: str = setting("auto", "auto (CUDA when available), cpu, cuda, cuda:N", semantic=False,
                          group="execution")
    amp: bool = setting(True, "mixed precision on CUDA", semantic=False, group="execution")
    eval_every: int = setting(1, "test accuracy every N epochs (the last always)", semantic=False,
                              group="execution", low=0)
    checkpoint_every: int = setting(0, "checkpoint every N epochs so an interrupted run resumes (0 = never)",
                                    semantic=False, group="execution", low=0)
    compile: bool = setting(False, "torch.compile each model (worth it on a GPU for long runs; compilation "
                            "takes a minute, and the dead-neuron hooks split the graph)", semantic=False,
                            group="execution")

    def semantic(self) -> dict[str, Any]:
        """The fields that identify the run, in a canonical JSON-ready form."""
        out = {}
        for name in SEMANTIC_FIELDS:
            value = getattr(self, name)
            if value is None or value == _NEUTRAL[name]:  # unset: not in the id (older ids stay valid)
                continue
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


#: Fields that define what a run computes (the run-id keys), in hashing order.
SEMANTIC_FIELDS = tuple(f.name for f in dataclasses.fields(RunSpec) if f.metadata["semantic"])
#: Fields a flag, a preset or the default sets (the CLI's data, training and execution settings).
SETTINGS = tuple(f for f in dataclasses.fields(RunSpec) if f.metadata["group"] is not None)
_NEUTRAL = {f.name: f.metadata["neutral"] for f in dataclasses.fields(RunSpec)}
_FLOAT_FIELDS = {f.name for f in dataclasses.fields(RunSpec) if f.type == "float"}
_INT_FIELDS = {f.name for f in dataclasses.fields(RunSpec) if f.type == "int"}


def bounds_problem(f: dataclasses.Field, value: Any) -> str | None:
    """``--name must be ≥ 1, got 0`` when ``value`` is outside field ``f``'s bounds; None when inside."""
    bounds = f.metadata["bounds"]
    if bounds is None or value is None:
        return None
    low, high, low_open, high_open = bounds
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not (below or above):
        return None
    if high is None:
        rule = f"{'>' if low_open else '≥'} {low:g}"
    elif low is None:
        rule = f"{'<' if high_open else '≤'} {high:g}"
    else:
        rule = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return f"--{f.name.replace('_', '-')} must be {rule}, got {value}"


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
