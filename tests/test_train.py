"""One run end to end on the synthetic data set: result schema, fairness, resume, divergence."""
import pytest
import torch
from torch import nn

from benchmark.store import schema

from benchmark.engine import train
from benchmark.engine.device import Diverged, DivergenceGuard, Precision, resolve_device
from benchmark.data.containers import Dataset, Split
from benchmark.spec import RunSpec
from methods.activations import ActivationMonitor

FAST = dict(dataset="synthetic", model="mlp", epochs=2, batch_size=64, lr=0.1, weight_decay=1e-4)


def test_result_has_every_metric_and_meets_the_target():
    result = train.run(RunSpec(method="gmp", target_sparsity=0.8, seed=0, **FAST))
    assert result["status"] == "complete" and result["label"] == "gmp"
    m = result["metrics"]
    for key in ["top1", "sparsity", "sparsity_all", "neuron_sparsity", "dead_rate_static",
                "dead_rate_dynamic", "params", "params_nonzero", "macs_dense", "macs_sparse",
                "macs_live", "train_time_s", "epochs", "num_classes"]:
        assert m[key] is not None, key
    assert m["sparsity"] == pytest.approx(0.8, abs=1e-5)
    assert m["macs_live"] <= m["macs_sparse"] < 0.25 * m["macs_dense"]
    assert m["num_classes"] == 10
    assert m["epochs"] == 2 and len(result["history"]) == 2
    assert result["history"][-1]["top1"] == m["top1"] > 0.5  # learnable; last epoch is the headline
    assert 0 < result["history"][0]["dead_rate_dynamic"] < 1
    assert list(result["layer_sparsity"]) == ["fc1.weight", "fc2.weight", "classifier.weight"]
    zeros = sum(result["layer_sparsity"][n] * size for n, size in
                [("fc1.weight", 784 * 300), ("fc2.weight", 300 * 100), ("classifier.weight", 100 * 10)])
    assert zeros == pytest.approx(0.8 * 266200, abs=1)
    assert result["environment"]["device"] == "cpu"
    assert result["environment"]["data_source"] == "generated" and result["environment"]["threads"] == 1
    assert schema.problem(result, result["run_id"]) is None  # what train writes, the store trusts
    # the headline dynamic DNR is the last epoch's, not the first's
    assert m["dead_rate_dynamic"] == result["history"][-1]["dead_rate_dynamic"]
    assert m["dead_rate_dynamic"] != result["history"][0]["dead_rate_dynamic"]


def test_every_method_of_a_seed_starts_from_the_same_weights():
    data = train.load_dataset("synthetic")
    dense, _ = train.build(RunSpec(method="dense", seed=3, **FAST), data, torch.device("cpu"))
    cpu = torch.device("cpu")
    gmp, _ = train.build(RunSpec(method="gmp", target_sparsity=0.9, seed=3, **FAST), data, cpu)
    other, _ = train.build(RunSpec(method="dense", seed=4, **FAST), data, torch.device("cpu"))
    pairs = list(zip(dense.state_dict().values(), gmp.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in pairs)
    pairs = zip(dense.state_dict().values(), other.state_dict().values())
    assert not all(torch.equal(a, b) for a, b in pairs)


def test_runs_are_deterministic_on_cpu():
    spec = RunSpec(method="magnitude", target_sparsity=0.5, seed=1, **FAST)
    a, b = train.run(spec), train.run(spec)
    assert a["metrics"]["top1"] == b["metrics"]["top1"]
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_interrupted_run_resumes_from_its_checkpoint_and_matches(tmp_path):
    spec = RunSpec(method="gmp", target_sparsity=0.9, seed=0, checkpoint_every=1,
                   **{**FAST, "epochs": 3})
    workdir = tmp_path / "fresh" / "runs" / spec.run_id  # does not exist yet

    def stop_after_two(epoch, total):
        if epoch == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train.run(spec, progress=stop_after_two, workdir=workdir)
    assert (workdir / "checkpoint.pt").exists()
    assert [p.name for p in workdir.iterdir()] == ["checkpoint.pt"]  # no temp file left
    epochs_seen = []
    resumed = train.run(spec, progress=lambda e, t: epochs_seen.append(e), workdir=workdir)
    assert [e for e in epochs_seen if e == int(e)] == [3]  # only the missing epoch ran
    assert 2 < min(epochs_seen)  # and its reports within the epoch count from 2
    assert resumed["resumed_from_epoch"] == 2
    assert not (workdir / "checkpoint.pt").exists()
    straight = train.run(spec)
    assert resumed["metrics"]["top1"] == straight["metrics"]["top1"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]


def test_imp_reports_its_real_epoch_budget():
    result = train.run(RunSpec(method="imp", target_sparsity=0.5, seed=0,
                               method_hparams={"prune_fraction": 0.5}, **{**FAST, "epochs": 1}))
    assert result["metrics"]["epochs"] == 2 and len(result["history"]) == 2
    assert result["metrics"]["sparsity"] == pytest.approx(0.5, abs=1e-5)


def test_unavailable_cuda_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


@pytest.mark.parametrize("name, message", [("tpu", "unknown device 'tpu'"), ("cuda:x", "unknown device"),
                                           ("meta", "not supported")])
def test_unknown_devices_are_one_line_errors(name, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(name)


@pytest.mark.parametrize("content", [b"", b"garbage", "foreign"])
def test_a_damaged_or_foreign_checkpoint_is_ignored_and_the_run_starts_over(tmp_path, content):
    spec = RunSpec(method="gmp", target_sparsity=0.9, seed=0, checkpoint_every=1, **FAST)
    if content == "foreign":
        torch.save({"run_id": "someoneelse0", "epoch": 1, "train_time": 0.0, "history": [], "model": {},
                    "optimizer": {}, "method": {}}, tmp_path / "checkpoint.pt")
    else:
        (tmp_path / "checkpoint.pt").write_bytes(content)
    with pytest.warns(UserWarning, match="ignoring checkpoint"):
        result = train.run(spec, workdir=tmp_path)
    assert result["resumed_from_epoch"] is None and len(result["history"]) == 2
    assert result["metrics"]["top1"] == train.run(spec)["metrics"]["top1"]


def test_a_diverging_run_stops_at_once_naming_the_step():
    spec = RunSpec(method="gmp", target_sparsity=0.5, seed=0, **{**FAST, "lr": 1e6, "epochs": 3})
    epochs_done = []
    with pytest.raises(Diverged) as err:
        train.run(spec, progress=lambda e, t: epochs_done.append(e))
    assert all(e < 1 for e in epochs_done)  # no epoch finished
    assert err.value.epoch == 1 and 1 <= err.value.step <= 10
    assert str(err.value) == f"non-finite training loss at epoch 1, step {err.value.step}"


def test_divergence_guard_names_the_first_bad_step_even_when_it_looks_late():
    guard = DivergenceGuard(torch.device("cpu"), steps_per_epoch=4)
    guard.every = 3  # as on a GPU: look only every few steps
    guard.observe(torch.tensor(1.0), 1)
    guard.observe(torch.tensor(2.0), 2)
    guard.observe(torch.tensor(0.5), 3)  # looked: fine
    guard.observe(torch.tensor(float("inf")), 4)
    guard.observe(torch.tensor(float("nan")), 5)
    with pytest.raises(Diverged) as err:
        guard.observe(torch.tensor(1.0), 6)
    assert (err.value.epoch, err.value.step) == (1, 4)
    with pytest.raises(Diverged):
        guard.check()


def test_the_run_computes_with_its_thread_count_and_restores_the_callers():
    seen = []
    before = torch.get_num_threads()
    spec = RunSpec(method="dense", seed=0, threads=1, **{**FAST, "epochs": 1})
    train.run(spec, progress=lambda e, t: seen.append(torch.get_num_threads()))
    assert seen and set(seen) == {1} and torch.get_num_threads() == before


def hand_dataset() -> Dataset:
    """2 features; unit 0 of the net below fires on the training inputs only (never on test)."""
    train_x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [1.0, 1.0]]).view(3, 1, 1, 2)
    test_x = torch.tensor([[-1.0, 1.0], [-1.0, 0.0], [-2.0, 3.0], [-1.0, -1.0], [0.0, 2.0]]).view(5, 1, 1, 2)
    return Dataset(name="hand", train=Split(train_x, torch.tensor([0, 0, 1])),
                   test=Split(test_x, torch.tensor([1, 0, 1, 1, 0])), val=None, num_classes=2,
                   in_shape=(1, 1, 2), augment=False, source="hand")


def hand_net() -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # unit 0 = relu(x0), unit 1 = relu(x1)
        model[1].bias.zero_()
        model[3].weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))  # class 1 iff x1 > x0 (after relu)
        model[3].bias.copy_(torch.tensor([0.1, 0.0]))
    return model


def test_final_metrics_cover_the_whole_test_set_exactly(monkeypatch):
    """Exact values on a 5-example test set read in batches of 2 (a partial last batch)."""
    monkeypatch.setattr(train, "EVAL_BATCH", 2)
    model, data = hand_net(), hand_dataset()
    monitor = ActivationMonitor(model)
    final = train.final_metrics(model, data, monitor, Precision(torch.device("cpu"), False))
    # logits class1 - class0 = relu(x1) - relu(x0) - 0.1: > 0 for examples 0, 2, 4 → predictions
    # [1, 0, 1, 0, 1] against labels [1, 0, 1, 1, 0]: 3 of 5 correct
    assert final["top1"] == 3 / 5
    # unit 0 = relu(x0) is 0 on every *test* example (alive on training data): 1 of 2 units dead
    assert final["dead_rate_static"] == 1 / 2
    assert final["val_top1"] is None
    assert final["macs_dense"] == 2 * 2 + 2 * 2
    assert final["macs_sparse"] == 2 + 4  # non-zero weights: 2 of layer 1, all 4 of layer 2
    assert final["macs_live"] == 2 + 2  # layer 2 reads only the alive unit 1: 2 weights


def test_on_a_gpu_the_guard_reads_the_flag_only_once_its_copy_has_landed():
    """The CUDA path, with a stand-in event: no read blocks; a landed copy naming a step raises."""
    class Event:
        landed = False

        def record(self):
            pass

        def query(self):
            return Event.landed
    guard = DivergenceGuard(torch.device("cpu"), steps_per_epoch=100)
    guard.every, guard._host, guard._new_event = 2, torch.zeros((), dtype=torch.long), Event
    guard.observe(torch.tensor(float("nan")), 1)
    guard.observe(torch.tensor(1.0), 2)     # look: no copy has landed yet → go on, start a copy
    guard.observe(torch.tensor(1.0), 3)
    guard.observe(torch.tensor(1.0), 4)     # still not landed → go on
    Event.landed = True
    with pytest.raises(Diverged) as err:
        guard.observe(torch.tensor(1.0), 6)  # the copy made at step 4 has landed and names step 1
    assert err.value.step == 1
