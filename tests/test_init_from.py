"""``--init-from``: runs start from a saved state_dict, named by its content; bad files stop the CLI."""
import dataclasses
import json
import shutil
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import methods
from benchmark.checks import UsageError, check_init_from
from benchmark.cli import main, prepare
from benchmark.data.registry import load_dataset
from benchmark.engine.checkpoint import save_checkpoint
from benchmark.engine.device import Precision
from benchmark.engine.init_from import (InitFromError, fit_problem, load_initial_weights, read_weights,
                                        replaced_head, resolve_tv_weights, state_dict_of, tv_identity)
from benchmark.engine.train import build
from benchmark.execution.executors import execute
from benchmark.flags import build_parser
from benchmark.spec import RunSpec
from models import get_model

FAST = ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "64", "--no-progress", "--no-plots",
        "--executor", "inline", "--methods", "dense", "--seeds", "0"]


def trained_state(seed: int = 7) -> dict[str, torch.Tensor]:
    """A stand-in for a trained LeNet-300-100 on synthetic data: another seed's weights, rescaled."""
    torch.manual_seed(seed)
    model = get_model("mlp", (1, 28, 28), 10)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5).add_(0.01)
    return model.state_dict()


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    path = tmp_path / "trained.pt"
    torch.save(trained_state(), path)
    return path


def planned(*args: str, out: Path) -> list[RunSpec]:
    specs, _ = prepare(build_parser().parse_args([*FAST, *args, "--out", str(out)]))
    return specs


def results(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/result.json"))]


def test_a_run_starts_from_the_file_and_the_same_file_gives_the_same_run(tmp_path, weights_file):
    spec = planned("--init-from", str(weights_file), out=tmp_path / "plan")[0]
    model, _ = build(spec, load_dataset("synthetic"), torch.device("cpu"))
    for name, tensor in trained_state().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    metrics = {}
    for name, extra in [("a", ["--init-from", str(weights_file)]), ("b", ["--init-from", str(weights_file)]),
                        ("plain", [])]:
        assert main([*FAST, *extra, "--out", str(tmp_path / name)]) == 0
        (result,) = results(tmp_path / name)
        assert result["status"] == "complete"
        metrics[name] = (result["metrics"]["top1"], result["history"][0]["train_loss"], result["run_id"])
    assert metrics["a"] == metrics["b"]
    assert metrics["a"][1] != metrics["plain"][1] and metrics["a"][2] != metrics["plain"][2]
    (result,) = results(tmp_path / "a")
    assert result["spec"]["init_from"] == str(weights_file.resolve())
    assert result["spec"]["init_weights"].startswith("sha256:")


def test_the_run_id_follows_the_content_not_the_path(tmp_path, weights_file):
    copy = tmp_path / "elsewhere" / "copy.pt"
    copy.parent.mkdir()
    shutil.copy(weights_file, copy)
    original = planned("--init-from", str(weights_file), out=tmp_path / "o")[0]
    copied = planned("--init-from", str(copy), out=tmp_path / "o")[0]
    assert copied.init_from != original.init_from
    assert copied.run_id == original.run_id and copied.cell_id == original.cell_id
    torch.save(trained_state(seed=8), copy)
    assert planned("--init-from", str(copy), out=tmp_path / "o")[0].run_id != original.run_id
    plain = planned(out=tmp_path / "o")[0]
    assert plain.init_from is None and plain.init_weights is None and plain.run_id != original.run_id
    assert dataclasses.replace(original, init_from=None, init_weights=None).run_id == plain.run_id


def test_an_unset_init_leaves_the_run_id_as_it_was():
    spec = RunSpec(dataset="synthetic", method="gmp", target_sparsity=0.9)
    assert "init_weights" not in spec.semantic()
    assert dataclasses.replace(spec, init_from="/some/where.pt").run_id == spec.run_id  # where: not semantic
    named = dataclasses.replace(spec, init_weights="sha256:" + "0" * 64)
    assert named.semantic()["init_weights"] == "sha256:" + "0" * 64
    assert named.run_id != spec.run_id and named.cell_id != spec.cell_id
    assert RunSpec.from_dict(named.to_dict()) == named


@pytest.mark.parametrize("content, message", [
    (lambda: get_model("lenet5", (1, 28, 28), 10).state_dict(),
     "does not fit model mlp on synthetic: 4 unexpected keys: conv1.weight, conv1.bias, conv2.weight and 1 "
     "more; 5 shape mismatches: fc1.weight (file 120×400, model 300×784)"),
    (lambda: {k: v for k, v in trained_state().items() if k != "classifier.bias"},
     "1 missing key: classifier.bias"),
    (lambda: {"epoch": 3, "optimizer": {}}, "holds no state_dict: expected a dict of tensors"),
    (lambda: get_model("mlp", (1, 28, 28), 10), "cannot be read by torch.load(weights_only=True)"),
    (None, "no such file"),
])
def test_a_bad_file_is_one_line_before_anything_runs(tmp_path, capsys, content, message):
    path, out = tmp_path / "weights.pt", tmp_path / "never"
    if content is not None:
        torch.save(content(), path)
    assert main([*FAST, "--init-from", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(path) in err, err
    assert not out.exists()


def test_checkpoint_layouts_are_accepted(tmp_path):
    state = trained_state()
    for layout in [state, {"state_dict": state, "epoch": 3}, {"model": state, "optimizer": {"lr": 0.1}}]:
        path = tmp_path / "w.pt"
        torch.save(layout, path)
        loaded = state_dict_of(path.read_bytes(), path)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_a_prunebench_checkpoint_is_accepted(tmp_path):
    model = get_model("mlp", (1, 28, 28), 10)
    model.load_state_dict(trained_state())
    method = methods.get_method("gmp", target_sparsity=0.5, seed=0)
    optimizer = method.make_optimizer(model, methods.OptimizerConfig(lr=0.1, momentum=0.9, weight_decay=0,
                                                                     nesterov=False))
    method.attach(model, optimizer, 10, 2)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, RunSpec(method="gmp"), 1, 0.5, [{"epoch": 1, "top1": None}], model, optimizer,
                    method, Precision(torch.device("cpu"), False))
    loaded = read_weights(str(path), "mlp").state_dict
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_a_file_changed_after_planning_is_a_failed_run(tmp_path, weights_file):
    out = tmp_path / "res"
    specs, store = prepare(build_parser().parse_args([*FAST, "--init-from", str(weights_file),
                                                      "--out", str(out)]))
    torch.save(trained_state(seed=9), weights_file)
    summary = execute(specs, store, executor="inline", show_progress=False)
    assert summary.failed == 1
    (result,) = results(out)
    assert result["status"] == "failed"
    assert "changed since the grid was planned" in result["error"] and str(weights_file) in result["error"]


def test_a_spec_naming_a_file_without_its_hash_is_refused():
    spec = RunSpec(dataset="synthetic", init_from="/x.pt")
    with pytest.raises(InitFromError, match="without init_weights"):
        load_initial_weights(get_model("mlp", (1, 28, 28), 10), spec)


def test_read_weights_names_a_file_by_its_sha256(weights_file):
    import hashlib
    weights = read_weights(str(weights_file), "mlp")
    assert weights.identity == "sha256:" + hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert weights.spec_fields() == {"init_from": str(weights_file.resolve()),
                                     "init_weights": weights.identity}


def test_mismatches_show_a_few_keys_then_how_many_more():
    expected = {f"layer{i}.weight": torch.empty(2, 2, device="meta") for i in range(6)}
    given = {"layer0.weight": torch.zeros(3, 2), **{f"extra{i}": torch.zeros(1) for i in range(5)}}
    assert fit_problem(expected, given) == (
        "5 missing keys: layer1.weight, layer2.weight, layer3.weight and 2 more; "
        "5 unexpected keys: extra0, extra1, extra2 and 2 more; "
        "1 shape mismatch: layer0.weight (file 3×2, model 2×2)")
    assert fit_problem(expected, {k: torch.zeros(2, 2) for k in expected}) is None


def test_tv_weights_need_a_torchvision_model(tmp_path, capsys):
    assert main([*FAST, "--init-from", "tv-weights:DEFAULT", "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--init-from tv-weights:DEFAULT needs a torchvision model (--model tv:<name>), not --model mlp" \
        in err
    with pytest.raises(InitFromError, match="needs a weights name"):
        resolve_tv_weights("tv:resnet18", "")


def test_tv_weights_resolve_by_name_without_the_network():
    default = resolve_tv_weights("tv:resnet18", "DEFAULT")
    assert tv_identity(default) == "tv-weights:ResNet18_Weights.IMAGENET1K_V1"
    assert resolve_tv_weights("tv:resnet18", "ResNet18_Weights.IMAGENET1K_V1") is default
    with pytest.raises(InitFromError, match="unknown weights 'ResNet18_Weights.NOPE'; choose from: DEFAULT, "
                                            "IMAGENET1K_V1"):
        resolve_tv_weights("tv:resnet18", "NOPE")
    with pytest.raises(InitFromError, match="are not weights of resnet18"):
        resolve_tv_weights("tv:resnet18", "ResNet50_Weights.DEFAULT")


def test_tv_weights_offline_say_they_cannot_be_fetched(monkeypatch):
    import torchvision.models._api as tv_api

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(InitFromError) as caught:
        read_weights("tv-weights:DEFAULT", "tv:resnet18")
    message = str(caught.value)
    assert "\n" not in message
    assert "ResNet18_Weights.IMAGENET1K_V1 cannot be fetched (offline?" in message
    assert "pass --init-from PATH with the file" in message and "resnet18-" in message

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", lambda url, *a, **k: {"fc.bias": torch.ones(3)})
    weights = read_weights("tv-weights:DEFAULT", "tv:resnet18")
    assert weights.identity == "tv-weights:ResNet18_Weights.IMAGENET1K_V1"
    assert weights.source == "tv-weights:DEFAULT"
    assert torch.equal(weights.state_dict["fc.bias"], torch.ones(3))


def test_a_run_loads_tv_weights_by_their_resolved_name(monkeypatch):
    import torchvision.models._api as tv_api
    fetched = []
    monkeypatch.setattr(tv_api, "load_state_dict_from_url",
                        lambda url, *a, **k: fetched.append(url) or trained_state())
    model = get_model("mlp", (1, 28, 28), 10)
    spec = RunSpec(dataset="synthetic", init_from="tv-weights:DEFAULT",
                   init_weights="tv-weights:ResNet18_Weights.IMAGENET1K_V1")
    load_initial_weights(model, spec)
    assert fetched and "resnet18" in fetched[0]
    assert torch.equal(model.state_dict()["fc1.weight"], trained_state()["fc1.weight"])


#: A data set of 10 classes whose images keep torchvision's ImageNet stem (> 64 px).
TEN_CLASSES = SimpleNamespace(name="ten-classes", in_shape=(3, 96, 96), num_classes=10)
TV_SPEC = RunSpec(model="tv:resnet18", seed=3, init_from="tv-weights:DEFAULT",
                  init_weights="tv-weights:ResNet18_Weights.IMAGENET1K_V1")


def published_resnet18() -> dict[str, torch.Tensor]:
    """A stand-in for torchvision's ImageNet resnet18 weights: 1000 classes, another seed, rescaled."""
    import torchvision
    torch.manual_seed(11)
    state = torchvision.models.resnet18(num_classes=1000).state_dict()
    return {k: v.mul(1.5).add(0.01) if v.is_floating_point() else v + 5 for k, v in state.items()}


def publish(monkeypatch, state: dict[str, torch.Tensor]) -> None:
    import torchvision.models._api as tv_api
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", lambda url, *a, **k: dict(state))


def test_tv_weights_on_other_classes_keep_every_tensor_but_a_fresh_seeded_head(monkeypatch):
    published = published_resnet18()
    publish(monkeypatch, published)
    weights = check_init_from(dataclasses.replace(TV_SPEC, init_weights=None), TEN_CLASSES)
    assert weights.spec_fields() == {"init_from": TV_SPEC.init_from, "init_weights": TV_SPEC.init_weights}
    model, _ = build(TV_SPEC, TEN_CLASSES, torch.device("cpu"))
    state = model.state_dict()
    assert state.keys() == published.keys()
    for key in published.keys() - {"fc.weight", "fc.bias"}:
        assert state[key].dtype == published[key].dtype and torch.equal(state[key], published[key]), key
    assert published["fc.weight"].shape == (1000, 512) and state["fc.weight"].shape == (10, 512)
    plain = dataclasses.replace(TV_SPEC, init_from=None, init_weights=None)
    for _ in range(2):  # the seeded head, the same as without --init-from, every time
        seeded = build(plain, TEN_CLASSES, torch.device("cpu"))[0].state_dict()
        assert torch.equal(state["fc.weight"], seeded["fc.weight"]) and torch.equal(state["fc.bias"],
                                                                                    seeded["fc.bias"])
    other_seed = build(dataclasses.replace(plain, seed=4), TEN_CLASSES, torch.device("cpu"))[0]
    assert not torch.equal(state["fc.weight"], other_seed.state_dict()["fc.weight"])


def test_tv_weights_on_a_thousand_classes_load_the_published_head(monkeypatch):
    published = published_resnet18()
    publish(monkeypatch, published)
    weights = read_weights("tv-weights:DEFAULT", "tv:resnet18")
    with torch.device("meta"):
        meta = get_model("tv:resnet18", (3, 96, 96), 1000).state_dict()
    assert replaced_head(meta, weights.state_dict) == () and fit_problem(meta, weights.state_dict) is None
    torch.manual_seed(0)
    model = get_model("tv:resnet18", (3, 96, 96), 1000)
    load_initial_weights(model, TV_SPEC)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in published.items())


@pytest.mark.parametrize("edit, problem", [
    (lambda s: s.update({"conv1.weight": torch.zeros(64, 3, 5, 5)}),
     "1 shape mismatch: conv1.weight (file 64×3×5×5, model 64×3×7×7)"),
    (lambda s: s.update({"fc.weight": torch.zeros(1000, 256)}),
     "2 shape mismatches: fc.weight (file 1000×256, model 10×512), fc.bias (file 1000, model 10)"),
    (lambda s: s.pop("fc.bias"), "1 missing key: fc.bias; 1 shape mismatch: fc.weight (file 1000×512, "
                                 "model 10×512)"),
    (lambda s: s.pop("layer1.0.bn1.running_mean"), "1 missing key: layer1.0.bn1.running_mean"),
])
def test_tv_weights_mismatching_elsewhere_are_refused_in_one_line(monkeypatch, edit, problem):
    published = published_resnet18()
    edit(published)
    publish(monkeypatch, published)
    with pytest.raises(UsageError) as planned_error:
        check_init_from(dataclasses.replace(TV_SPEC, init_weights=None), TEN_CLASSES)
    assert str(planned_error.value) == ("--init-from tv-weights:DEFAULT does not fit model tv:resnet18 on "
                                        f"ten-classes: {problem}")
    with pytest.raises(InitFromError) as run_error:
        build(TV_SPEC, TEN_CLASSES, torch.device("cpu"))
    assert str(run_error.value) == ("--init-from tv-weights:ResNet18_Weights.IMAGENET1K_V1 does not fit "
                                    f"model tv:resnet18: {problem}")


def test_a_file_with_another_head_is_refused(tmp_path):
    path = tmp_path / "imagenet.pt"
    torch.save(published_resnet18(), path)
    problem = "2 shape mismatches: fc.weight (file 1000×512, model 10×512), fc.bias (file 1000, model 10)"
    with pytest.raises(UsageError) as planned_error:
        check_init_from(dataclasses.replace(TV_SPEC, init_from=str(path), init_weights=None), TEN_CLASSES)
    assert str(planned_error.value) == f"--init-from {path} does not fit model tv:resnet18 on ten-classes: " \
                                       f"{problem}"
    spec = dataclasses.replace(TV_SPEC, **read_weights(str(path), "tv:resnet18").spec_fields())
    with pytest.raises(InitFromError) as run_error:
        build(spec, TEN_CLASSES, torch.device("cpu"))
    assert str(run_error.value) == f"--init-from {path} does not fit model tv:resnet18: {problem}"
