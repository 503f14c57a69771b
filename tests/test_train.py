"""One run end to end on the synthetic data set: result schema, fairness, resume."""
import pytest
import torch

from benchmark import train
from benchmark.spec import RunSpec

FAST = dict(dataset="synthetic", model="mlp", epochs=2, batch_size=64, lr=0.1, weight_decay=1e-4)


def test_result_has_every_metric_and_meets_the_target():
    result = train.run(RunSpec(method="gmp", target_sparsity=0.8, seed=0, **FAST))
    assert result["status"] == "complete" and result["label"] == "gmp"
    m = result["metrics"]
    for key in ["top1", "top1_best", "sparsity", "sparsity_all", "neuron_sparsity", "dead_rate_static",
                "dead_rate_dynamic", "params", "params_nonzero", "macs_dense", "macs_sparse",
                "train_time_s", "epochs"]:
        assert m[key] is not None, key
    assert m["sparsity"] == pytest.approx(0.8, abs=1e-5)
    assert m["macs_sparse"] < 0.25 * m["macs_dense"]
    assert m["epochs"] == 2 and len(result["history"]) == 2
    assert result["history"][-1]["top1"] == m["top1"] > 0.5  # learnable; last epoch is the headline
    assert 0 < result["history"][0]["dead_rate_dynamic"] < 1
    assert list(result["layer_sparsity"]) == ["fc1.weight", "fc2.weight", "classifier.weight"]
    zeros = sum(result["layer_sparsity"][n] * size for n, size in
                [("fc1.weight", 784 * 300), ("fc2.weight", 300 * 100), ("classifier.weight", 100 * 10)])
    assert zeros == pytest.approx(0.8 * 266200, abs=1)
    assert result["environment"]["device"] == "cpu"


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

    def stop_after_two(epoch, total):
        if epoch == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train.run(spec, progress=stop_after_two, workdir=tmp_path)
    assert (tmp_path / "checkpoint.pt").exists()
    epochs_seen = []
    resumed = train.run(spec, progress=lambda e, t: epochs_seen.append(e), workdir=tmp_path)
    assert epochs_seen == [3]  # only the missing epoch ran
    assert not (tmp_path / "checkpoint.pt").exists()
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
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        train.resolve_device("cuda")
    assert train.resolve_device("auto").type == "cpu"
