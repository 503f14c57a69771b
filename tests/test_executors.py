"""Executors: local worker processes and the Ray path return results to the driver, which stores them."""
import sys
import types

import pytest

from benchmark import executors
from benchmark.spec import plan_grid
from benchmark.store import RunStore

COMMON = dict(dataset="synthetic", model="mlp", epochs=1, batch_size=64, lr=0.1)


def small_grid():
    return plan_grid(["dense", "gmp"], [0.8], [0], {}, **COMMON)


def test_local_workers_give_the_same_results_as_inline(tmp_path):
    specs = small_grid()
    inline, local = RunStore(tmp_path / "inline"), RunStore(tmp_path / "local")
    executors.execute(specs, inline, show_progress=False)
    summary = executors.execute(specs, local, executor="local", workers=2, show_progress=False)
    assert (summary.completed, summary.failed, summary.skipped) == (2, 0, 0)
    for spec in specs:
        a, b = inline.load(spec.run_id), local.load(spec.run_id)
        assert a["metrics"]["top1"] == b["metrics"]["top1"]
        assert a["metrics"]["sparsity"] == b["metrics"]["sparsity"]


class ObjectRef:
    """Hashable by identity, like Ray's object references."""

    def __init__(self, value):
        self.value = value


class FakeRay(types.ModuleType):
    """The subset of Ray's API the executor uses, running tasks eagerly in this process."""

    def __init__(self):
        super().__init__("ray")
        self.requested = []

    def init(self, **kwargs):
        self.init_kwargs = kwargs

    def cluster_resources(self):
        return {"CPU": 8, "GPU": 1}

    def remote(self, num_gpus, num_cpus):
        self.requested.append((num_gpus, num_cpus))

        def wrap(fn):
            return types.SimpleNamespace(remote=lambda *a: ObjectRef(fn(*a)))
        return wrap

    def wait(self, refs, num_returns):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref.value


def test_ray_executor_packs_fractional_gpus_and_the_driver_stores_results(tmp_path, monkeypatch):
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    store = RunStore(tmp_path)
    summary = executors.execute(small_grid(), store, executor="ray", gpus_per_run=0.25, cpus_per_run=2,
                                show_progress=False)
    assert fake.requested == [(0.25, 2)]
    assert summary.completed == 2 and all(store.is_complete(s.run_id) for s in small_grid())


def test_ray_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    with pytest.raises(RuntimeError, match="pip install 'prunebench\\[ray\\]'"):
        executors.execute(small_grid(), RunStore(tmp_path), executor="ray", show_progress=False)


def test_unknown_executor(tmp_path):
    with pytest.raises(ValueError, match="unknown executor 'slurm'"):
        executors.execute(small_grid(), RunStore(tmp_path), executor="slurm")
