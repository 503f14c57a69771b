"""Plugins: a user's method, network and data set through the CLI, in the driver and in worker processes.

Every plugin is imported in a subprocess (the CLI's own, or ``python -c``), so this test process's
registries stay the built-in ones that other tests list exactly.
"""
from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pandas as pd
import pytest

from benchmark import plugins
from benchmark.cli import main
from cli_process import ROOT

FAST = ["--epochs", "2", "--batch-size", "64", "--no-progress", "--no-plots", "--threads", "1"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_benchmarks.py"), *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=600)


def test_a_plugin_method_runs_in_worker_processes_and_is_listed(tmp_path):
    out = tmp_path / "res"
    done = cli("--plugin", "examples.snip", "--dataset", "synthetic", "--methods", "snip", "gmp",
               "--sparsities", "0.8", "--seeds", "0", "--executor", "local", "--workers", "2", *FAST,
               "--out", str(out))
    assert done.returncode == 0, done.stderr
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["snip", "n_seeds"] == 1 and pd.isna(board.loc["snip", "flag"])
    assert board.loc["snip", "sparsity"] == pytest.approx(0.8, abs=1e-4)
    assert "snip" in done.stdout  # the pivot
    listing = cli("--plugin", "examples.snip", "--list")
    assert listing.returncode == 0
    assert any(line.split()[:2] == ["snip", "SNIP:"] for line in listing.stdout.splitlines() if line.strip())


def test_without_the_plugin_its_method_is_unknown(tmp_path):
    done = cli("--dataset", "synthetic", "--methods", "snip", "--sparsities", "0.8", "--seeds", "0", *FAST,
               "--out", str(tmp_path / "res"))
    assert done.returncode == 2 and "unknown method 'snip'" in done.stderr


def test_a_plugin_network_and_data_set_run_in_worker_processes(tmp_path):
    out = tmp_path / "res"
    done = cli("--plugin", "tests.plugin_fixture", "--dataset", "blobs", "--model", "tiny-net",
               "--methods", "gmp", "--sparsities", "0.5", "--seeds", "0", "--executor", "local",
               "--workers", "2", *FAST, "--out", str(out))
    assert done.returncode == 0, done.stderr
    results = [json.loads(path.read_text()) for path in (out / "runs").glob("*/result.json")]
    assert sorted(r["spec"]["method"] for r in results) == ["dense", "gmp"]
    result = next(r for r in results if r["spec"]["method"] == "gmp")
    assert result["status"] == "complete"
    assert (result["spec"]["dataset"], result["spec"]["model"]) == ("blobs", "tiny-net")
    assert result["metrics"]["num_classes"] == 3
    assert result["metrics"]["params"] == 16 * 16 + 16 + 16 * 3 + 3
    assert result["metrics"]["sparsity"] == pytest.approx(0.5, abs=1 / (16 * 16 + 16 * 3))


def test_a_plugin_that_cannot_be_imported_is_one_line_and_exit_2(capsys):
    assert main(["--plugin", "no_such_package.plugin", "--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["run_benchmarks.py: error: cannot load plugin 'no_such_package.plugin': "
                   "ModuleNotFoundError: No module named 'no_such_package'"]


def test_entry_points_are_loaded_and_named_modules_reach_the_workers(monkeypatch):
    found = [metadata.EntryPoint(name="fixture", value="tests.helpers", group=plugins.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(plugins.metadata, "entry_points",
                        lambda group: found if group == plugins.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(plugins, "_LOADED", [])  # this process's record, restored afterwards
    monkeypatch.setenv(plugins.ENVIRONMENT_VARIABLE, "")  # restored (to unset) afterwards
    assert "entry-point:fixture" in plugins.load_plugins([])
    assert plugins.forwarded_environment() == {}  # entry points load by themselves in a worker
    assert "cli_process" in plugins.load_plugins(["cli_process"])  # a module with no side effects
    assert plugins.forwarded_environment() == {plugins.ENVIRONMENT_VARIABLE: "cli_process"}
    with pytest.raises(plugins.PluginError, match="cannot load plugin 'broken': ModuleNotFoundError"):
        found.append(metadata.EntryPoint(name="broken", value="no_such_package_either",
                                         group=plugins.ENTRY_POINT_GROUP))
        plugins.load_plugins([])


SNIP_RULE = """
import json, torch
from torch import nn
import methods
from examples.snip import SNIP
net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
with torch.no_grad():
    net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
    net[2].weight.copy_(torch.tensor([[0.1, 4.0], [-1.0, 2.0]]))
grads = [torch.tensor([[0.5, 0.1], [-0.1, 2.0]]), torch.tensor([[3.5, 0.01], [0.2, -0.4]])]
method = methods.get_method("snip", target_sparsity=0.5)
method.attach(net, torch.optim.SGD(net.parameters(), lr=0.0), steps_per_epoch=1, total_epochs=1)
for layer, g in zip((net[0], net[2]), grads):
    layer.weight.grad = g.clone()
method.after_backward(0)
print(json.dumps({n: m.tolist() for n, m in method.masks.items()}))
"""


def test_snip_keeps_the_weights_with_the_largest_gradient_times_weight():
    done = subprocess.run([sys.executable, "-c", SNIP_RULE], cwd=ROOT, text=True, capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    masks = json.loads(done.stdout)
    # |g·w|: layer 0 [[0.5, 0.2], [0.3, 1.0]], layer 2 [[0.35, 0.04], [0.2, 0.8]]; one global threshold
    # keeps the top 4 of 8 (1.0, 0.8, 0.5, 0.35)
    assert masks == {"0.weight": [[1.0, 0.0], [0.0, 1.0]], "2.weight": [[1.0, 0.0], [0.0, 1.0]]}


def test_registering_a_taken_name_or_a_one_class_data_set_is_refused():
    import methods
    from benchmark.data.registry import register_dataset
    from models import register_model
    with pytest.raises(ValueError, match="model name 'mlp' is already registered"):
        register_model("mlp", lambda in_shape, num_classes, activation: None, "another mlp")
    with pytest.raises(ValueError, match="data set name 'synthetic' is already registered"):
        register_dataset("synthetic", "another", 10, lambda root, download: None)
    with pytest.raises(ValueError, match="needs at least 2 classes, got 1"):
        register_dataset("one-class", "nothing to learn", 1, lambda root, download: None)
    with pytest.raises(ValueError, match="method name 'gmp' is already registered"):
        methods.register(type("OtherGMP", (methods.base.MaskedMethod,), {"name": "gmp"}))
