"""Executors (local, Ray faked and real, submitit): results return to the driver, which stores them."""
import os
import signal
import sys
import threading
import types

import pytest

from benchmark.execution import executors
from benchmark.execution.backends import assign_gpus
from benchmark.spec import plan_grid
from benchmark.store.run_store import RunStore
from benchmark.engine.pause_points import reached_pids
from sync import pause_environment, paused, release, wait_for

COMMON = dict(dataset="synthetic", model="mlp", epochs=1, batch_size=64, lr=0.1, threads=1)


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

    def is_initialized(self):
        return False

    def cluster_resources(self):
        return {"CPU": 8, "GPU": 1}

    def remote(self, num_gpus, num_cpus, max_retries):
        self.requested.append((num_gpus, num_cpus, max_retries))

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
    assert fake.requested == [(0.25, 2, 0)]  # a task whose worker dies is recorded, not retried
    assert summary.completed == 2 and all(store.is_complete(s.run_id) for s in small_grid())


def test_ray_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    with pytest.raises(RuntimeError, match="pip install 'prunebench\\[ray\\]'"):
        executors.execute(small_grid(), RunStore(tmp_path), executor="ray", show_progress=False)


def test_unknown_executor(tmp_path):
    with pytest.raises(ValueError, match="unknown executor 'slurm'"):
        executors.execute(small_grid(), RunStore(tmp_path), executor="slurm")


@pytest.mark.parametrize("workers, gpus, share, expected", [
    (3, 0, None, [None, None, None]),          # no GPU: CPU workers
    (3, 0, 0.25, [None, None, None]),
    (4, 2, None, [0, 1, 0, 1]),                # round-robin, as many as asked
    (8, 2, 0.25, [0, 1, 0, 1, 0, 1, 0, 1]),    # four per GPU fit exactly
    (2, 1, 0.5, [0, 0]),
    (3, 1, 1 / 3, [0, 0, 0]),                  # ⌊1/(1/3)⌋ = 3 despite float rounding
])
def test_gpu_packing_never_puts_more_than_floor_1_over_share_on_a_gpu(workers, gpus, share, expected):
    assert assign_gpus(workers, gpus, share) == expected


@pytest.mark.parametrize("workers, gpus, share, message", [
    (5, 1, 0.25, "--workers 5 do not fit: 1 GPU(s) × ⌊1/0.25⌋ = 4 runs at a time"),
    (3, 2, 1.0, "--workers 3 do not fit: 2 GPU(s)"),
    (1, 1, 1.5, "--gpus-per-run must be in (0, 1]"),
])
def test_gpu_packing_refuses_what_does_not_fit(workers, gpus, share, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        assign_gpus(workers, gpus, share)


# ------------------------------------------------------------------------------------- ray, for real

def _ray():
    """Ray itself: CI installs the [ray] extra, so there this test runs; elsewhere it may skip."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Ray is missing in CI: the setup script installs prunebench[ray]")
        pytest.skip("Ray is not installed (pip install 'prunebench[ray]')")
    return ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray = _ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_a_grid_on_a_real_local_ray_instance_matches_inline_and_resumes(tmp_path, ray_cluster):
    specs = plan_grid(["dense", "gmp", "granet"], [0.8], [0, 1], {}, **COMMON)
    inline, on_ray = RunStore(tmp_path / "inline"), RunStore(tmp_path / "ray")
    executors.execute(specs, inline, show_progress=False)
    summary = executors.execute(specs, on_ray, executor="ray", show_progress=False)
    assert (summary.completed, summary.failed, summary.skipped) == (6, 0, 0)
    for spec in specs:
        a, b = inline.load(spec.run_id), on_ray.load(spec.run_id)
        assert a["metrics"]["top1"] == b["metrics"]["top1"]
        assert a["metrics"]["sparsity"] == b["metrics"]["sparsity"]
        assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
        assert b["environment"]["pid"] != os.getpid()  # computed on a Ray worker
    again = executors.execute(specs, on_ray, executor="ray", show_progress=False)
    assert (again.completed, again.skipped) == (0, 6)  # finished runs are never submitted


def test_a_ray_task_whose_worker_dies_is_recorded_as_failed_and_the_grid_goes_on(
        tmp_path, monkeypatch, ray_cluster):
    """The first task to start training is held at a pause point and its worker killed there; the
    other tasks are released and complete."""
    specs = plan_grid(["gmp"], [0.8], [0, 1, 2], {}, **{**COMMON, "epochs": 2})
    pauses = tmp_path / "pauses"
    for name, value in pause_environment(pauses, "epoch_started").items():
        monkeypatch.setenv(name, value)  # the Ray backend forwards them to its tasks
    killed = []

    def kill_one_worker():
        try:
            pid = paused(pauses, "epoch_started")[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        finally:
            release(pauses, "epoch_started")  # the grid goes on whatever happened here
    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    store = RunStore(tmp_path / "res")
    summary = executors.execute(specs, store, executor="ray", show_progress=False)
    killer.join()
    assert killed and summary.failed == 1 and summary.completed == 2
    (failure,) = summary.failures
    assert failure["reason"] == "worker_died" and failure["error"].startswith("worker_died: ")
    assert store.load(failure["run_id"])["failure"] == {"reason": "worker_died"}
    assert not list(store.root.glob("runs/*/lock"))


# ------------------------------------------------------------------------------------- SLURM (submitit)

def test_submitit_job_arrays_give_the_same_results_as_inline(tmp_path):
    try:
        import submitit  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("submitit is missing in CI: the setup script installs prunebench[slurm]")
        pytest.skip("submitit is not installed (pip install 'prunebench[slurm]')")
    specs = small_grid()
    inline, slurm = RunStore(tmp_path / "inline"), RunStore(tmp_path / "slurm")
    executors.execute(specs, inline, show_progress=False)
    summary = executors.execute(specs, slurm, executor="submitit", show_progress=False)
    assert (summary.completed, summary.failed) == (2, 0)
    for spec in specs:
        assert inline.load(spec.run_id)["metrics"]["top1"] == slurm.load(spec.run_id)["metrics"]["top1"]
    assert (tmp_path / "slurm" / "submitit").is_dir()  # the jobs' logs and pickles
    again = executors.execute(specs, slurm, executor="submitit", show_progress=False)
    assert (again.completed, again.skipped) == (0, 2)


def test_a_preempted_submitit_job_is_requeued_and_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """The job is preempted (SIGUSR2, what SLURM sends) while it holds a checkpoint, at a pause point;
    submitit requeues it and the requeued run resumes from that checkpoint."""
    if not os.environ.get("CI"):
        pytest.importorskip("submitit")
    spec = plan_grid(["gmp"], [0.8], [0], {}, **{**COMMON, "epochs": 3, "checkpoint_every": 1})[0]
    pauses = tmp_path / "pauses"
    for name, value in pause_environment(pauses, "checkpoint_saved").items():
        monkeypatch.setenv(name, value)  # the job processes inherit them
    preempted = []

    def preempt_once():
        try:
            (first,) = paused(pauses, "checkpoint_saved")  # epoch 1's checkpoint is on disk
            os.kill(first, signal.SIGUSR2)
            preempted.append(first)
            wait_for(lambda: [p for p in reached_pids(pauses, "checkpoint_saved") if p != first],
                     "the requeued job")
        finally:
            release(pauses, "checkpoint_saved")  # the grid goes on whatever happened here
    preempter = threading.Thread(target=preempt_once)
    preempter.start()
    store = RunStore(tmp_path / "res")
    summary = executors.execute([spec], store, executor="submitit", show_progress=False)
    preempter.join()
    assert preempted and (summary.completed, summary.failed) == (1, 0)
    result = store.load(spec.run_id)
    assert result["resumed_from_epoch"] == 1 and result["environment"]["pid"] != preempted[0]
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
