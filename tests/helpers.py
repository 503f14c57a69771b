"""Hand-built, schema-valid run results for the store and report tests (no torch)."""
from __future__ import annotations

from benchmark.store.schema import SCHEMA_VERSION, with_checksum
from benchmark.spec import RunSpec

MACS_DENSE = 1000


def make_spec(method: str = "gmp", target: float = 0.9, seed: int = 0, *, hparams: dict | None = None,
              epochs: int = 3, activation: str = "relu", model: str = "mlp") -> RunSpec:
    return RunSpec(dataset="synthetic", model=model, activation=activation, method=method,
                   method_hparams=hparams or {}, target_sparsity=target, seed=seed, epochs=epochs,
                   batch_size=32, lr=0.1, momentum=0.9, weight_decay=5e-4)


def make_result(method: str = "gmp", target: float = 0.9, seed: int = 0, top1: float = 0.9, *,
                label: str | None = None, hparams: dict | None = None, status: str = "complete",
                sparsity: float | None = None, epochs: int = 3, activation: str = "relu", model: str = "mlp",
                layers: tuple[str, ...] = ("layers.0.weight", "layers.2.weight"),
                reason: str = "error") -> dict:
    """One run's result dict, shaped like benchmark/train.py's (run and cell ids from the spec), sealed
    with its checksum as the store writes it (a test that changes it and writes it by hand reseals it
    with ``with_checksum``; ``RunStore.save`` reseals by itself)."""
    spec = make_spec(method, target, seed, hparams=hparams, epochs=epochs, activation=activation, model=model)
    result = {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "cell_id": spec.cell_id,
              "status": status, "error": None, "label": label or method, "spec": spec.to_dict(),
              "finished_at": "2026-11-22T00:00:00Z",
              "history": [{"epoch": e, "top1": top1, "dead_rate_dynamic": 0.4 + 0.1 * target + 0.01 * e}
                          for e in range(1, epochs + 1)]}
    if status != "complete":
        result.update(error="RuntimeError: boom", failure={"reason": reason}, metrics={},
                      history=result["history"][:1])
        return with_checksum(result)
    actual = target if sparsity is None else sparsity
    result.update(
        environment={"torch": "2.5.0", "device": "cpu"},
        layer_sparsity={name: min(1.0, actual + 0.02 * i) for i, name in enumerate(layers)},
        metrics={"top1": top1, "val_top1": None, "sparsity": actual,
                 "sparsity_all": actual * 0.99, "neuron_sparsity": 0.01 * (seed % 10),
                 "dead_rate_static": 0.1 * target,
                 "dead_rate_dynamic": 0.5 + 0.1 * target, "params": 5000,
                 "params_nonzero": round(5000 * (1 - actual)) + seed, "macs_dense": MACS_DENSE,
                 "macs_sparse": round(MACS_DENSE * (1 - actual)) + 10 * seed,
                 "macs_live": round(MACS_DENSE * (1 - actual)) + 5 * seed, "train_time_s": 1.0 + seed,
                 "num_classes": 10,
                 "epochs": epochs})
    return with_checksum(result)
