"""What a trustworthy ``result.json`` is: the checks the store applies to every file it reads.

A result is trusted only when it is a JSON object of the current :data:`SCHEMA_VERSION`, its
``checksum`` matches its content (see :func:`checksum_of`: a hand-edited number is caught), its
``run_id`` names the folder it sits in *and* is the hash of the spec it carries (so a copied,
edited or foreign file cannot pose as a run of the grid), its ``status`` is ``complete`` or
``failed``, and a complete result has every headline metric with a plausible value and a
non-empty history. Anything else is reported (one line each) and treated as absent: it never
counts as complete, never reaches a leaderboard, and its run is computed again when the grid
asks for it. No torch here: the store and the reports stay torch-free.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from benchmark.spec import RunSpec
from benchmark.store.files import json_safe, utc_now

#: Version of the result.json layout; a file with another version is not trusted (its run re-runs).
#: 3: every result carries a ``checksum`` of its content.
SCHEMA_VERSION = 4  # 4: macs_sparse counts non-zero weights only; macs_live, num_classes added
#: The key holding a result's checksum, and the algorithm named in its value (``sha256:<hex>``).
CHECKSUM_KEY = "checksum"
CHECKSUM_ALGORITHM = "sha256"

STATUSES = ("complete", "failed")
#: Why a failed run failed (``result["failure"]["reason"]``).
FAILURE_REASONS = ("diverged", "cuda_oom", "worker_died", "error")

#: Metrics a complete result must carry as numbers (None is allowed only where marked optional).
REQUIRED_METRICS = (
    "top1", "sparsity", "sparsity_all", "neuron_sparsity", "params", "params_nonzero", "macs_dense",
    "macs_sparse", "macs_live", "train_time_s", "epochs",
    "num_classes",
)
#: Metrics that must be present but may be None (NaN when nothing was measured).
OPTIONAL_METRICS = ("dead_rate_static", "dead_rate_dynamic", "val_top1")
#: Metrics that are fractions in [0, 1].
FRACTIONS = ("top1", "sparsity", "sparsity_all", "neuron_sparsity", "dead_rate_static", "dead_rate_dynamic",
             "val_top1")


def build_result(spec: RunSpec, status: str, label: str, metrics: dict[str, Any],
                 history: list[dict[str, Any]], error: str | None = None, **fields: Any) -> dict[str, Any]:
    """The one place a result dict is made: ``status`` (complete or failed), the run's identity
    (run id, cell id, spec), its label, metrics and history, the schema version and the time;
    ``fields`` adds the rest (environment, layer sparsity, failure, traceback, …)."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    return with_checksum({
        "schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "cell_id": spec.cell_id,
        "status": status, "error": error, "label": label, "spec": spec.to_dict(), **fields,
        "metrics": metrics, "history": history, "finished_at": utc_now()})


def checksum_of(result: dict[str, Any]) -> str:
    """``sha256:<hex>`` of ``result``'s content: the canonical JSON (sorted keys, no spaces) of its
    JSON-safe form (NaN/inf as null, as the store writes them) without the checksum key.
    ``TypeError`` when a value is not JSON-serialisable."""
    content = {k: v for k, v in json_safe(result).items() if k != CHECKSUM_KEY}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return f"{CHECKSUM_ALGORITHM}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def with_checksum(result: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``result`` whose ``checksum`` matches its content (any older checksum replaced).

    :class:`~benchmark.store.run_store.RunStore` seals every result it saves; a test that writes a
    ``result.json`` by hand seals it with this."""
    content = {k: v for k, v in result.items() if k != CHECKSUM_KEY}
    return {**content, CHECKSUM_KEY: checksum_of(content)}


def _checksum_problem(data: dict[str, Any]) -> str | None:
    """Why ``data``'s checksum cannot vouch for its content, or None when it matches."""
    stored = data.get(CHECKSUM_KEY)
    if stored is None:
        return "no checksum (not written by the store)"
    try:
        expected = checksum_of(data)
    except TypeError as err:
        return f"its content cannot be checksummed ({err})"
    return None if stored == expected else "its checksum does not match its content (edited?)"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def problem(data: Any, folder: str) -> str | None:
    """Why ``data`` (a parsed result.json in folder ``folder``) cannot be trusted; None when it can."""
    if not isinstance(data, dict):
        return f"not a JSON object but {type(data).__name__}"
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        return f"schema_version {version!r}, expected {SCHEMA_VERSION} (written by another version)"
    checksum_problem = _checksum_problem(data)
    if checksum_problem:
        return checksum_problem
    run_id = data.get("run_id")
    if run_id != folder:
        return f"run_id {run_id!r} does not match its folder {folder!r}"
    if data.get("status") not in STATUSES:
        return f"status {data.get('status')!r} is not one of {', '.join(STATUSES)}"
    spec_problem = _spec_problem(data)
    if spec_problem:
        return spec_problem
    if not isinstance(data.get("label"), str) or not data["label"]:
        return "no label"
    if data["status"] == "failed":
        has_error = isinstance(data.get("error"), str) and data["error"]
        return None if has_error else "a failed run without its error"
    return _complete_problem(data)


def _spec_problem(data: dict) -> str | None:
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return "no spec"
    try:
        parsed = RunSpec.from_dict(spec)
        run_id, cell_id = parsed.run_id, parsed.cell_id
    except (TypeError, ValueError) as err:
        return f"its spec cannot be read ({err})"
    if run_id != data["run_id"]:
        return f"its spec hashes to run id {run_id}, not {data['run_id']} (edited or from another version)"
    if data.get("cell_id") != cell_id:
        return f"cell_id {data.get('cell_id')!r} does not match its spec ({cell_id})"
    return None


def _complete_problem(data: dict) -> str | None:
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        return "a complete run without metrics"
    missing = [m for m in REQUIRED_METRICS + OPTIONAL_METRICS if m not in metrics]
    if missing:
        return f"a complete run without {', '.join(missing)}"
    for name in REQUIRED_METRICS:
        if not _is_number(metrics[name]):
            return f"metric {name} is {metrics[name]!r}, not a number"
    for name in OPTIONAL_METRICS:
        if metrics[name] is not None and not _is_number(metrics[name]):
            return f"metric {name} is {metrics[name]!r}, not a number"
    for name in FRACTIONS:
        if metrics[name] is not None and not 0.0 <= metrics[name] <= 1.0:
            return f"metric {name} = {metrics[name]} is outside [0, 1]"
    history = data.get("history")
    if not isinstance(history, list) or not history or not all(isinstance(h, dict) for h in history):
        return "a complete run without its per-epoch history"
    return None


def describe_reasons(counts: dict[str, int]) -> str:
    """'2 diverged, 1 error' from failure reason → count (most frequent first, then by name)."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{n} {reason}{'s' if reason == 'error' and n > 1 else ''}" for reason, n in ordered)
