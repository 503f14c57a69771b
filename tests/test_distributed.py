"""Runs of several processes (``--procs-per-run``): distributed data parallel on CPU with gloo.

Exact checks first (sharding, loss weights, checksums, the launcher's failure handling), then the
methods: two processes must hold bitwise the same masks and weights after every step — through
prune events, regrowth, dead-unit checks on a BatchNorm network and gRDA's thresholding — and meet
the same sparsity as one process.

Tolerance against one process, and why: on an MLP (no BatchNorm, no dropout) two processes compute
the same update as one — the global batch's mean gradient — and differ only in the order in which
the gradient's terms are summed (two half-batch sums, all-reduced, instead of one sum): about one
unit in the last place (~1e-7 relative) per step. Training amplifies such differences, so after two
epochs the training loss agrees to 1e-4 (relative) and top-1 to 2 test examples in 512; target
sparsities are exact by construction and gRDA's outcome sparsity agrees to 1e-3.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark.checks import last_batch_problem, procs_problems
from benchmark.cli import main
from benchmark.data.batching import eval_batches, shard_range, train_batches
from benchmark.data.containers import Split
from benchmark.engine import train
from benchmark.engine.device import Diverged
from benchmark.engine.launch import RankDied, RemoteTraceback, run_processes
from benchmark.engine.world import SINGLE, World, fingerprint
from benchmark.execution.backends import assign_gpu_groups
from benchmark.execution.runs import safe_run
from benchmark.spec import RunSpec
from distributed_entries import add_ranks, die_on_rank_one, fail_on_rank_one, record_every_step
from resume import resumed_and_straight
from sync import environment_with, pause_environment, paused, wait_for

FAST = dict(dataset="synthetic", model="mlp", epochs=2, batch_size=64, lr=0.1, weight_decay=1e-4)


# sharding and weights: exact ---------------------------------------------------------------------
def _split(n: int) -> Split:
    x = torch.arange(n * 4, dtype=torch.float32).view(n, 1, 2, 2)
    return Split(x, torch.arange(n))


@pytest.mark.parametrize("augment", [False, True])
def test_two_shards_together_are_exactly_the_one_process_batches(augment):
    split = _split(10)
    whole = list(train_batches(split, 4, seed=3, epoch=1, augment=augment))
    rank0 = list(train_batches(split, 4, seed=3, epoch=1, augment=augment, shard=(0, 2)))
    rank1 = list(train_batches(split, 4, seed=3, epoch=1, augment=augment, shard=(1, 2)))
    assert [len(y) for _, y in rank0] == [2, 2, 1] and [len(y) for _, y in rank1] == [2, 2, 1]
    for (x, y), (x0, y0), (x1, y1) in zip(whole, rank0, rank1):
        assert torch.equal(y[0::2], y0) and torch.equal(y[1::2], y1)
        assert torch.equal(x[0::2], x0) and torch.equal(x[1::2], x1)  # the same crops and flips


def test_evaluation_shards_are_contiguous_and_cover_the_split_once():
    split = _split(11)
    assert [shard_range(11, (r, 3)) for r in range(3)] == [range(0, 3), range(3, 7), range(7, 11)]
    labels = [y for r in range(3) for _, y in eval_batches(split, 2, (r, 3))]
    assert torch.equal(torch.cat(labels), split.y)
    assert [len(y) for _, y in eval_batches(split, 2, (1, 3))] == [2, 2]


def test_loss_weights_make_the_averaged_gradient_the_global_mean():
    shares = train.Shares(World(rank=1, size=2), examples=10, batch_size=4)
    assert [shares.weight(s) for s in range(3)] == [2 / 4, 2 / 4, 2 / 2]
    # rank shares of the last batch (2 examples of 5 → 3 and 2): Σ_r weight · Σ_i∈r ℓ_i / size = mean
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    shares = train.Shares(World(rank=0, size=2), examples=5, batch_size=5)
    averaged = (shares.weight(0) * losses[0::2].sum() + shares.weight(0) * losses[1::2].sum()) / 2
    assert averaged == losses.mean()


def test_fingerprints_see_any_bit_and_any_move():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert fingerprint([a]).tolist() == fingerprint([a.clone()]).tolist()
    flipped = a.clone()
    flipped.view(torch.int32)[1] ^= 1  # the last bit of one value
    assert fingerprint([flipped]) != fingerprint([a])
    assert fingerprint([a.flip(0)]) != fingerprint([a])
    masks = torch.tensor([True, False, True])
    assert fingerprint([masks]) != fingerprint([masks.roll(1)])


def test_diverged_keeps_its_step_when_it_travels_between_processes():
    error = pickle.loads(pickle.dumps(Diverged(epoch=2, step=37)))
    assert (type(error), error.epoch, error.step, str(error)) == (
        Diverged, 2, 37, "non-finite training loss at epoch 2, step 37")


def test_one_process_is_not_part_of_the_run_id_and_more_are():
    one = RunSpec(method="gmp", target_sparsity=0.5)
    assert RunSpec(method="gmp", target_sparsity=0.5, procs_per_run=1).run_id == one.run_id
    two = RunSpec(method="gmp", target_sparsity=0.5, procs_per_run=2)
    assert two.run_id != one.run_id and two.semantic()["procs_per_run"] == 2


def test_configuration_problems_are_one_line_each():
    cpu = torch.device("cpu")
    assert procs_problems(1, 1, "cpu", cpu) == []
    assert procs_problems(4, 2, "cpu", cpu) == [
        "--batch-size 2 is smaller than --procs-per-run 4: every process takes a share of each batch"]
    assert last_batch_problem(2048, 64, 2) is None and last_batch_problem(2049, 64, 1) is None
    assert last_batch_problem(2049, 64, 2) == (
        "the last batch of an epoch has 1 example(s) (2049 % --batch-size 64), fewer than --procs-per-run 2: "
        "every process needs a share; choose another batch size")


def test_gpu_groups_are_disjoint_and_must_fit():
    assert assign_gpu_groups(2, 4, 2) == ["0,1", "2,3"]
    assert assign_gpu_groups(3, 0, 2) == [None, None, None]
    with pytest.raises(ValueError, match="--workers 3 × --procs-per-run 2 GPUs do not fit on this machine's"):
        assign_gpu_groups(3, 4, 2)


# the launcher ------------------------------------------------------------------------------------
def test_the_launcher_starts_ranks_like_torchrun_and_forwards_rank_zero_progress():
    seen = []
    out = run_processes(add_ranks, (10.0,), 2, "gloo", progress=lambda *v: seen.append(v))
    assert out["sum"] == 21.0 and (out["rank"], out["size"]) == (0, 2)
    assert out["environment"] == {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2",
                                  "MASTER_ADDR": "127.0.0.1"}
    assert seen == [(1.5, 2), (2, 2)]  # rank 1's reports are not forwarded


def test_a_rank_that_raises_fails_the_run_with_its_own_error_and_stops_its_peer():
    with pytest.raises(ValueError, match="bad input on rank 1") as caught:
        run_processes(fail_on_rank_one, (), 2, "gloo")  # rank 0, stuck in a collective, is killed
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert "fail_on_rank_one" in str(caught.value.__cause__)


def test_a_rank_that_dies_is_a_worker_death_and_its_peer_is_stopped():
    with pytest.raises(RankDied, match="exited with code 3"):
        run_processes(die_on_rank_one, (), 2, "gloo")


# the methods on two processes ---------------------------------------------------------------------
CASES = {
    "gmp": dict(method="gmp", target_sparsity=0.8),
    "granet": dict(method="granet", target_sparsity=0.8),
    "dnr": dict(method="dnr", target_sparsity=0.8),
    "grda": dict(method="grda", target_sparsity=0.5, method_hparams={"c": 0.01}),
}


def _two_process_records(spec: RunSpec) -> tuple[list[dict], dict]:
    out = run_processes(record_every_step, (spec.to_dict(),), 2, "gloo")
    rank0, rank1 = out["records"]
    assert len(rank0) == spec.epochs * 32 and rank0 == rank1  # bitwise the same after every step
    return rank0, out["result"]


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_hold_identical_masks_after_every_step_and_match_one_process(case):
    spec = RunSpec(**FAST, **CASES[case], procs_per_run=2)
    records, result = _two_process_records(spec)
    masked = [r["masked"] for r in records]
    zeros = [r["zeros"] for r in records]
    if case == "grda":  # sparsity by soft thresholding: the zero pattern grows (and moves)
        assert zeros[-1] > zeros[0] and len({tuple(r["params"]) for r in records}) == len(records)
    else:
        prune_events = sum(b > a for a, b in zip(masked, masked[1:]))
        assert prune_events >= 3 and masked[-1] == round(0.8 * (784 * 300 + 300 * 100 + 100 * 10))
    if case == "granet":  # regrowth: masks change at steps where the masked count does not grow
        changed = [b["masks"] != a["masks"] for a, b in zip(records, records[1:])]
        grown = [c and b["masked"] <= a["masked"] for c, a, b in zip(changed, records, records[1:])]
        assert sum(changed) > sum(b > a for a, b in zip(masked, masked[1:])) or any(grown)
    one = train.run(RunSpec(**FAST, **CASES[case]))
    assert result["environment"]["procs"] == 2 and result["environment"]["dist_backend"] == "gloo"
    assert one["environment"]["procs"] == 1 and one["environment"]["dist_backend"] is None
    a, b = one["metrics"], result["metrics"]
    if case == "grda":
        assert b["sparsity"] == pytest.approx(a["sparsity"], abs=1e-3)
    else:
        assert b["sparsity"] == a["sparsity"] == pytest.approx(0.8, abs=1e-6)
    assert abs(b["top1"] - a["top1"]) <= 2 / 512
    assert b["dead_rate_dynamic"] == pytest.approx(a["dead_rate_dynamic"], rel=1e-3)
    assert result["history"][-1]["train_loss"] == pytest.approx(one["history"][-1]["train_loss"], rel=1e-4)


def test_dead_unit_checks_agree_on_a_batchnorm_network():
    """DNR's eval-mode probe reads BatchNorm running statistics: they must agree on both ranks."""
    spec = RunSpec(**{**FAST, "model": "resnet20", "epochs": 1}, method="dnr", target_sparsity=0.5,
                   method_hparams={"check_every": 4}, procs_per_run=2)
    records, result = _two_process_records(spec)
    assert len({tuple(r["buffers"]) for r in records}) == len(records)  # statistics move, in step
    assert result["metrics"]["sparsity"] == pytest.approx(0.5, abs=1e-6)


def test_a_two_process_run_resumes_from_its_checkpoint_and_matches(tmp_path):
    spec = RunSpec(**{**FAST, "epochs": 3}, method="gmp", target_sparsity=0.8, checkpoint_every=1,
                   procs_per_run=2)
    resumed, _ = resumed_and_straight(spec, tmp_path)
    assert resumed["resumed_from_epoch"] == 2


def test_a_diverging_two_process_run_is_recorded_as_diverged():
    result = safe_run(RunSpec(**{**FAST, "lr": 1e6}, method="gmp", target_sparsity=0.5, procs_per_run=2))
    assert result["status"] == "failed" and result["failure"]["reason"] == "diverged"
    assert result["failure"]["epoch"] == 1 and "non-finite training loss" in result["error"]


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_the_cli_runs_a_grid_of_two_process_runs(tmp_path, capsys, executor):
    """Each run is two processes; the driver alone writes one result per run (rank 0's)."""
    out = tmp_path / "res"
    code = main(["--dataset", "synthetic", "--epochs", "1", "--batch-size", "64", "--no-progress",
                 "--no-plots", "--executor", executor, "--methods", "gmp", "--sparsities", "0.8",
                 "--seeds", "0", "--procs-per-run", "2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    results = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/result.json"))]
    assert sorted(r["spec"]["method"] for r in results) == ["dense", "gmp"]
    assert all(r["status"] == "complete" and r["environment"]["procs"] == 2 for r in results)
    assert all(sorted(p.name for p in (out / "runs" / r["run_id"]).iterdir()) == ["result.json"]
               for r in results)


def test_the_speed_benchmark_times_one_run_on_one_and_on_two_processes(capsys):
    from benchmark.perf.scale import procs_epoch_times
    times = procs_epoch_times(2, model="mlp", dataset="synthetic", epochs=2, device="cpu")
    assert sorted(times) == [1, 2] and all(t > 0 for t in times.values())


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ranks die with their parent on Linux")
def test_ranks_die_with_the_process_that_started_them(tmp_path):
    """A grid worker killed with SIGKILL (the driver's way to stop it) leaves no rank training on."""
    code = ("import sys; sys.path.insert(0, 'tests'); from benchmark.engine import train; "
            "from benchmark.spec import RunSpec; "
            f"train.run(RunSpec(**{FAST!r}, method='gmp', target_sparsity=0.8, procs_per_run=2))")
    env = environment_with(pause_environment(tmp_path, "epoch_started"))
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[1])
    try:
        ranks = paused(tmp_path, "epoch_started", count=2, proc=parent)
        assert parent.pid not in ranks
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        wait_for(lambda: all(_gone(pid) for pid in ranks), "the ranks exiting after their parent")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_single_world_collectives_do_nothing():
    t = torch.tensor([1.0, 2.0])
    assert SINGLE.sum_(t) is t and torch.equal(t, torch.tensor([1.0, 2.0]))
