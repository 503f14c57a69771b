"""Calibration: find the value of a method's sparsity-setting hyperparameter that meets a target.

gRDA's ``c`` (and DemP's ``λ_peak``) have no target sparsity: sparsity is an outcome of training.
A method declares ``calibration = Calibration(hparam, low, high, ...)`` (``methods.base``); when a
spec of it has a target > 0 and ``hparam`` = 0, :func:`run` first searches the value whose final
measured weight sparsity lands within ``tolerance`` of the target, then trains the run with it.

**Probes.** A probe is a full run of the same spec (same epochs and LR schedule: a shorter run
would not reach the same final sparsity) with ``hparam`` set and the seed fixed to
:data:`CALIBRATION_SEED`, so one search serves every seed of a cell. A probe's result at the
chosen value *is* the run of the calibration seed (reused, not retrained).

**Search** over x = log(value); sparsity grows with the value, roughly as a logistic curve, so
secants are drawn in (x, logit sparsity) through the two unsaturated probes (0 < s < 1) nearest
the target. Bracketing: from ``start``, step toward the target by the secant's step clamped to
[×2, ×100] in value, else half a decade from an unsaturated probe, else a decade. Once bracketed
(probes on both sides): the secant point kept inside the middle 80% of the bracket, or the
bracket's midpoint when there is no secant or the two previous secant probes fell on the same
side of the target (so the bracket at least halves every other probe). Values stay in
[``low``, ``high``].

**Stopping rule** (first that holds): (1) a probe is within ``tolerance`` of the target; (2) the
target is out of reach (sparsity at ``high`` still below it, or at ``low`` already above it);
(3) the bracket is narrower than 0.1% of the value (sparsity jumps there); (4) ``max_probes``
probes ran. The chosen value is the probe closest to the target; when it misses the tolerance
the run still happens and the leaderboard flags its cell.

**Cache.** ``<results>/calibration/<key>.json`` (atomic writes, one per cell and search policy)
holds every probe as it finishes, so an interrupted search resumes and a rerun or another seed
does not search again. The key hashes what changes the answer: the spec's semantic fields without
the seed (``hparam`` is 0 there), the calibration seed and the search policy. A file lock
(``<key>.lock``, an ``flock``, removed once its search is done; see :func:`search_lock`) stops
parallel workers from searching the same cell twice, and :func:`searches_first` orders a grid so
that parallel workers search different cells at once instead of waiting on that lock. A probe
depends on the recipe and the value, not on the target (a calibrated method trains the same
whatever the target: its hparam alone sets the sparsity), so a search takes a finished probe that
another target's search of the same recipe ran at the same value instead of training it again
(``shared_from`` names that search).

**Cost.** Each run's result gets a ``calibration`` block (value, probes, stop reason, cache use)
and metrics ``calibration_value``, ``calibration_probes`` (the search's probes),
``calibration_epochs`` (epochs of the probes this search trained) and ``calibration_time_s``
(their wall time): the search's cost, repeated on every seed of the cell (it is paid once per
cell); a shared probe is paid by the search that trained it. The run keeps its planned run id,
spec and label.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import methods
from benchmark.spec import RunSpec
from benchmark.store.files import atomic_write_text, json_safe, real_folder
from benchmark.store.layout import ResultsLayout
from methods.base import Calibration

#: The seed of every probe run: one search serves all seeds of a cell.
CALIBRATION_SEED = 0
_LOGIT_EPS = 1e-4
_MIN_BRACKET = math.log1p(1e-3)  # stop when hi/lo < 1.001
_MIN_STEP, _MAX_STEP = math.log(2.0), math.log(100.0)  # bracketing steps: ×2 … ×100

RunFn = Callable[..., dict]


@dataclass(frozen=True)
class Probe:
    """One probe run: the value tried, the sparsity it reached, the search rule that chose it."""
    value: float
    sparsity: float
    rule: str = ""


def _logit(s: float) -> float:
    s = min(max(s, _LOGIT_EPS), 1 - _LOGIT_EPS)
    return math.log(s / (1 - s))


def stop_reason(probes: list[Probe], target: float, cal: Calibration) -> str | None:
    """Why the search stops after ``probes`` (see the module docstring), or None to go on."""
    if any(abs(p.sparsity - target) <= cal.tolerance + 1e-12 for p in probes):
        return "within tolerance"
    below = [p for p in probes if p.sparsity < target]
    above = [p for p in probes if p.sparsity > target]
    if below and max(p.value for p in below) >= cal.high:
        return "out of reach: sparsity at the upper bound is below the target"
    if above and min(p.value for p in above) <= cal.low:
        return "out of reach: sparsity at the lower bound is above the target"
    if below and above and math.log(min(p.value for p in above) / max(p.value for p in below)) < _MIN_BRACKET:
        return "bracket collapsed"
    if len(probes) >= cal.max_probes:
        return "probe cap"
    return None


def _secant(probes: list[Probe], target: float) -> float | None:
    """log(value) where the line through the two unsaturated probes nearest the target, in
    (log value, logit sparsity), reaches the target; None without two such probes or a rising line."""
    zt = _logit(target)
    usable = sorted((p for p in probes if _LOGIT_EPS < p.sparsity < 1 - _LOGIT_EPS),
                    key=lambda p: abs(_logit(p.sparsity) - zt))
    for second in usable[1:]:
        first = usable[0]
        dx = math.log(second.value) - math.log(first.value)
        dz = _logit(second.sparsity) - _logit(first.sparsity)
        if dx != 0:
            return math.log(first.value) + (zt - _logit(first.sparsity)) * dx / dz if dx * dz > 0 else None
    return None


def next_probe(probes: list[Probe], target: float, cal: Calibration) -> Probe:
    """The next value to probe and the rule that chose it (sparsity not measured yet: NaN)."""
    if not probes:
        return Probe(cal.first_value, math.nan, "start")
    below = sorted((p for p in probes if p.sparsity < target), key=lambda p: p.value)
    above = sorted((p for p in probes if p.sparsity > target), key=lambda p: p.value)
    secant = _secant(probes, target)
    if below and above:
        xl, xh = sorted((math.log(below[-1].value), math.log(above[0].value)))  # sorted: noise may cross
        width = xh - xl
        last = probes[-2:]
        stalled = (len(last) == 2 and all(p.rule == "secant" for p in last)
                   and (last[0].sparsity < target) == (last[1].sparsity < target))
        if secant is None or stalled:
            x, rule = xl + width / 2, "bisect"
        else:
            x, rule = min(max(secant, xl + 0.1 * width), xh - 0.1 * width), "secant"
    else:
        near, direction = (below[-1], 1.0) if below else (above[0], -1.0)
        x_near = math.log(near.value)
        if secant is not None:
            step = min(max(abs(secant - x_near), _MIN_STEP), _MAX_STEP)
        elif _LOGIT_EPS < near.sparsity < 1 - _LOGIT_EPS:
            step = math.log(10.0) / 2  # inside the transition already: half a decade
        else:
            step = math.log(10.0)
        x, rule = x_near + direction * step, "bracket"
    return Probe(float(min(max(math.exp(x), cal.low), cal.high)), math.nan, rule)


def search(measure: Callable[[Probe], float], target: float, cal: Calibration,
           probes: list[Probe] | None = None) -> tuple[Probe, list[Probe], str]:
    """Run the search with ``measure(planned probe) → sparsity``; returns (chosen, all probes, stop reason).

    ``probes`` already measured (a resumed search) are used first.
    """
    probes = list(probes or [])
    while (reason := stop_reason(probes, target, cal)) is None:
        planned = next_probe(probes, target, cal)
        probes.append(dataclasses.replace(planned, sparsity=measure(planned)))
    best = min(probes, key=lambda p: (abs(p.sparsity - target), p.value))
    return best, probes, reason


# ----------------------------------------------------------------------------------------------
# the harness side: probe runs, the cache, the run's result

def calibration_of(spec: RunSpec) -> Calibration | None:
    """The method's :class:`Calibration` when ``spec`` needs a search (target > 0, hparam 0), else None."""
    cal = methods.get_method_class(spec.method).calibration
    if cal is None or spec.target_sparsity <= 0:
        return None
    hparams = methods.make_hparams(spec.method, **spec.method_hparams)
    return cal if getattr(hparams, cal.hparam) == 0 else None


def cache_key(spec: RunSpec, cal: Calibration) -> str:
    """16 hex characters naming the search: the spec without its seed, the calibration seed, the policy."""
    fields = _recipe(spec)
    resolved = dataclasses.asdict(methods.make_hparams(spec.method, **spec.method_hparams))
    fields["method_hparams"] = {**resolved, cal.hparam: 0}  # defaults spelled out, as the CLI does
    text = json.dumps({"spec": fields, "seed": CALIBRATION_SEED, "policy": dataclasses.asdict(cal)},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def searches_first(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """``specs`` with one run per calibration search moved to the front, the rest in their order.

    A search runs inside the first run of its cell, and the cell's other seeds wait on its lock.
    In plan order (seeds innermost) a second worker would therefore wait for the first cell's
    search instead of starting the next cell's; leading with one run per search lets parallel
    workers search different cells at once. The leader is the calibration seed's run where the
    grid has one (its probe is reused as the run), else the cell's first run.
    """
    leaders: dict[str, int] = {}
    for index, spec in enumerate(specs):
        cal = calibration_of(spec)
        if cal is None:
            continue
        key = cache_key(spec, cal)
        if key not in leaders or (spec.seed == CALIBRATION_SEED != specs[leaders[key]].seed):
            leaders[key] = index
    first = sorted(leaders.values())
    led = set(first)
    return [specs[i] for i in first] + [s for i, s in enumerate(specs) if i not in led]


def cache_dir_of(workdir: Path | None) -> Path | None:
    """``<results>/calibration`` for a run folder ``<results>/runs/<run_id>`` (the store's layout)."""
    return None if workdir is None else ResultsLayout.of_run_dir(workdir).calibration_dir


def with_value(spec: RunSpec, hparam: str, value: float, **changes: Any) -> RunSpec:
    """``spec`` with ``hparam`` set to ``value`` (and other fields changed)."""
    return dataclasses.replace(spec, method_hparams={**spec.method_hparams, hparam: value}, **changes)


def run(spec: RunSpec, progress: Callable[[float, int], None] | None = None, workdir: Path | None = None,
        train_fn: RunFn | None = None) -> dict[str, Any]:
    """``train.run(spec)``, after a (cached) calibration search when the spec needs one."""
    if train_fn is None:
        from benchmark.engine import train
        train_fn = train.run
    cal = calibration_of(spec)
    if cal is None:
        return train_fn(spec, progress=progress, workdir=workdir)
    record = calibrate(spec, cal, cache_dir_of(workdir), train_fn)
    chosen = next(p for p in record["probes"] if p["value"] == record["value"])
    reused = spec.seed == CALIBRATION_SEED and chosen.get("result") is not None
    if reused:
        result = json.loads(json.dumps(chosen["result"]))
        if progress is not None:
            progress(result["metrics"]["epochs"], result["metrics"]["epochs"])
    else:
        result = train_fn(with_value(spec, cal.hparam, record["value"]), progress=progress, workdir=workdir)
    return annotate(result, spec, record, reused)


def annotate(result: dict[str, Any], spec: RunSpec, record: dict[str, Any], reused: bool) -> dict[str, Any]:
    """The run's result under its planned id, spec and label, with the search's value and cost."""
    probes = record["probes"]
    summary = {k: v for k, v in record.items() if k not in ("probes", "recipe")}
    summary["probes"] = [{k: v for k, v in p.items() if k != "result"} for p in probes]
    summary["reused_probe"] = reused
    label = methods.method_label(spec.method, methods.make_hparams(spec.method, **spec.method_hparams))
    trained = [p for p in probes if "shared_from" not in p]
    cost = {"calibration_value": record["value"], "calibration_probes": len(probes),
            "calibration_epochs": sum(p["epochs"] for p in trained),
            "calibration_time_s": sum(p["time_s"] for p in trained)}
    return {**result, "run_id": spec.run_id, "cell_id": spec.cell_id, "label": label,
            "spec": spec.to_dict(), "calibration": summary, "metrics": {**result["metrics"], **cost}}


def calibrate(spec: RunSpec, cal: Calibration, cache: Path | None, train_fn: RunFn) -> dict[str, Any]:
    """The search record of ``spec``'s cell: from the cache when complete, else searched (and cached)."""
    key = cache_key(spec, cal)
    path = cache / f"{key}.json" if cache is not None else None
    with search_lock(path):
        record = _load(path)
        if record is not None and record.get("value") is not None:
            return {**record, "cache": "hit"}
        done = record["probes"] if record else []
        record = {"key": key, "hparam": cal.hparam, "target": spec.target_sparsity,
                  "tolerance": cal.tolerance, "seed": CALIBRATION_SEED, "recipe": _recipe(spec),
                  "probes": list(done), "value": None, "stop": None}
        known = {p["value"]: p["sparsity"] for p in done}

        def measure(planned: Probe) -> float:
            if planned.value in known:  # (a value met twice is not run twice)
                return known[planned.value]
            shared = _probe_of_another_target(path, record, planned.value)
            if shared is not None:
                origin, probe = shared
                entry = {**probe, "rule": planned.rule, "shared_from": probe.get("shared_from", origin)}
            else:
                probe_spec = with_value(spec, cal.hparam, planned.value, seed=CALIBRATION_SEED,
                                        checkpoint_every=0)
                t0 = time.perf_counter()
                result = train_fn(probe_spec)
                metrics = result["metrics"]
                entry = {"value": planned.value, "rule": planned.rule, "sparsity": metrics["sparsity"],
                         "top1": metrics["top1"], "epochs": metrics["epochs"],
                         "time_s": time.perf_counter() - t0, "result": json_safe(result)}
            record["probes"].append(entry)
            known[planned.value] = entry["sparsity"]
            _save(path, record)
            return entry["sparsity"]

        best, probes, reason = search(measure, spec.target_sparsity, cal,
                                      [Probe(p["value"], p["sparsity"], p.get("rule", "")) for p in done])
        record.update(value=best.value, sparsity=best.sparsity, stop=reason,
                      within_tolerance=abs(best.sparsity - spec.target_sparsity) <= cal.tolerance + 1e-12)
        _save(path, record)
        return {**record, "cache": "resumed" if done else "miss"}


def _probe_of_another_target(path: Path | None, record: dict[str, Any],
                             value: float) -> tuple[str, dict[str, Any]] | None:
    """(key of the search, probe): a probe at ``value`` that a search of the same recipe for another
    target already ran, or None. Searches in progress count (their file holds each probe once it
    finished); a probe that was itself shared keeps its ``shared_from``.
    """
    if path is None:
        return None

    def without_target(recipe: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in recipe.items() if k != "target_sparsity"}

    mine = without_target(record["recipe"])
    for other in sorted(path.parent.glob("*.json")):
        if other == path:
            continue
        sibling = _load(other)
        if (sibling is None or sibling.get("hparam") != record["hparam"]
                or sibling.get("seed") != record["seed"]
                or without_target(sibling.get("recipe", {})) != mine):
            continue
        for probe in sibling["probes"]:
            if probe.get("value") == value and probe.get("result") is not None:
                return sibling.get("key", other.stem), probe
    return None


def _recipe(spec: RunSpec) -> dict[str, Any]:
    fields = spec.semantic()
    del fields["seed"]
    return fields


def _load(path: Path | None) -> dict[str, Any] | None:
    """The search record at ``path``, or None when absent, unreadable or a symbolic link (not read)."""
    if path is None or path.is_symlink():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("probes"), list) else None


def _save(path: Path | None, record: dict[str, Any]) -> None:
    """Write the search record atomically, never outside the results folder (``<results>/calibration``)."""
    if path is not None:
        atomic_write_text(path, json.dumps(json_safe(record), indent=1, allow_nan=False) + "\n",
                          inside=path.parent.parent)


@contextmanager
def search_lock(path: Path | None) -> Iterator[None]:
    """An exclusive ``flock`` on ``<path>.lock`` (released when the process dies), or nothing.

    ``<results>/calibration`` is made a real folder first (a symbolic link there is replaced). Once
    the body is done (the record complete) the file is removed while still held, so no ``*.lock``
    outlives its search; a waiter holding the removed file relocks the one on disk (:func:`_acquire`).
    After an exception the file stays (harmless: the cell's next search uses and removes it)."""
    if path is None:
        yield
        return
    real_folder(path.parent.parent, path.parent)
    lock = path.with_suffix(".lock")
    fd = _acquire(lock)
    try:
        yield
        lock.unlink(missing_ok=True)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(lock: Path) -> int:
    """A descriptor of ``lock`` holding its exclusive ``flock``, checked to be the file on disk.

    A holder removes the file before it unlocks it, so a lock obtained on a file that is no longer
    at ``lock`` (another inode, or none) guards nothing: it is dropped and the current file locked.
    Never follows a symbolic link (one at ``lock`` is removed).
    """
    while True:
        if lock.is_symlink():
            lock.unlink(missing_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _is_on_disk(fd, lock):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _is_on_disk(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file now at ``path``."""
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)
