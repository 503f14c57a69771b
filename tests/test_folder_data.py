"""``--dataset folder:<path>``: an ImageFolder streamed from disk, in a fixed order per (seed, epoch)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark.cli import main
from benchmark.data.batching import eval_batches, train_batches
from benchmark.data.folder import ImageDecodeError, load_folder
from benchmark.data.registry import load_dataset
from benchmark.engine.probe import probe_inputs

CLASSES, TRAIN, TEST = 3, 60, 12


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A generated image folder: 3 classes of small RGB and grey PNG/JPEG images of several sizes."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, n in (("train", TRAIN), ("val", TEST)):
        for c in range(CLASSES):
            (root / split / f"class{c}").mkdir(parents=True)
            for i in range(n // CLASSES):
                shape = (18 + i % 4, 22) + (() if i % 3 == 0 else (3,))
                pixels = (rng.random(shape) * 60 + 70 * c).astype(np.uint8)
                name = f"{i:03d}.{'png' if i % 2 else 'jpg'}"
                Image.fromarray(pixels).save(root / split / f"class{c}" / name)
    return root


def split_of(folder, workers: int, image_size: int = 16):
    return load_folder(f"folder:{folder}", 0.0, image_size, workers, val_indices=None)


def epoch(split, seed: int, n: int = 0):
    batches = list(train_batches(split, 16, seed, n))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def test_the_order_and_augmentation_are_fixed_by_seed_and_epoch_not_by_the_workers(folder):
    in_process, two_workers = split_of(folder, 0).train, split_of(folder, 2).train
    x0, y0 = epoch(in_process, seed=0)
    x1, y1 = epoch(two_workers, seed=0)
    assert x0.shape == (TRAIN, 3, 16, 16) and torch.equal(y0, y1) and torch.equal(x0, x1)
    x2, y2 = epoch(two_workers, seed=0)
    assert torch.equal(x1, x2)  # the same seed twice: the same batches
    x3, y3 = epoch(in_process, seed=1)
    assert not torch.equal(y0, y3)  # another seed: another order
    _, y4 = epoch(in_process, seed=0, n=1)
    assert not torch.equal(y0, y4)  # another epoch too
    every_label = [c for c in range(CLASSES) for _ in range(TRAIN // CLASSES)]
    assert sorted(y0.tolist()) == sorted(y3.tolist()) == every_label


def test_evaluation_images_are_centre_crops_in_file_order_and_the_probe_is_fixed(folder):
    data = split_of(folder, 0)
    x, y = zip(*eval_batches(data.test, 5))
    assert torch.cat(y).tolist() == [c for c in range(CLASSES) for _ in range(TEST // CLASSES)]
    assert torch.equal(torch.cat(x), torch.cat([b for b, _ in eval_batches(split_of(folder, 2).test, 7)]))
    probe = probe_inputs(data.train, size=10)
    assert probe.shape == (10, 3, 16, 16) and torch.equal(probe, probe_inputs(data.train, size=10))
    assert (data.num_classes, data.in_shape) == (CLASSES, (3, 16, 16))


def test_a_corrupt_image_is_one_error_naming_the_file(folder, tmp_path):
    broken = tmp_path / "broken"
    for split in ("train", "val"):
        for c in range(2):
            (broken / split / f"c{c}").mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(broken / split / f"c{c}" / "ok.png")
    (broken / "train" / "c1" / "bad.png").write_bytes(b"not an image")
    split = load_folder(f"folder:{broken}", 0.0, 8, 2, val_indices=None).train
    with pytest.raises(ImageDecodeError) as info:
        epoch(split, seed=0)
    assert str(info.value).startswith(f"cannot decode image {broken / 'train' / 'c1' / 'bad.png'}: ")
    assert "\n" not in str(info.value)


def test_the_cli_trains_on_an_image_folder_and_refuses_a_wrong_layout(folder, tmp_path, capsys):
    out = tmp_path / "res"
    args = ["--dataset", f"folder:{folder}", "--image-size", "16", "--model", "lenet5", "--methods", "gmp",
            "--sparsities", "0.5", "--seeds", "0", "--epochs", "1", "--batch-size", "16",
            "--val-fraction", "0.2", "--data-workers", "0", "--executor", "inline", "--no-plots",
            "--no-progress", "--out", str(out)]
    assert main(args) == 0
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["gmp", "n_seeds"] == 1 and board.loc["gmp", "sparsity"] == pytest.approx(0.5, abs=1e-3)
    result = json.loads(next((out / "runs").glob("*/result.json")).read_text())
    assert result["spec"]["image_size"] == 16 and result["metrics"]["val_top1"] is not None
    assert len(load_dataset(f"folder:{folder}", val_fraction=0.2, image_size=16).val) == TRAIN // 5
    capsys.readouterr()
    assert main([*args[:1], f"folder:{tmp_path / 'nowhere'}", *args[2:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected" in err[0] and "/train/<class>/" in err[0]


def test_tiny_imagenets_validation_split_is_reorganised_into_class_folders(tmp_path):
    import subprocess
    import sys
    from cli_process import ROOT
    root = tmp_path / "tiny-imagenet-200"
    for wnid in ("n01", "n02"):
        (root / "train" / wnid / "images").mkdir(parents=True)
        image = root / "train" / wnid / "images" / f"{wnid}_0.JPEG"
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    (root / "val" / "images").mkdir(parents=True)
    for i, wnid in enumerate(("n02", "n01", "n02")):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(root / "val" / "images" / f"val_{i}.JPEG")
    (root / "val" / "val_annotations.txt").write_text(
        "val_0.JPEG\tn02\t0\t0\t8\t8\nval_1.JPEG\tn01\t0\t0\t8\t8\nval_2.JPEG\tn02\t0\t0\t8\t8\n")
    script = [sys.executable, str(ROOT / "scripts" / "tinyimagenet_val_to_folders.py"), str(root)]
    assert subprocess.run(script, capture_output=True, text=True).stdout.strip() == \
        "moved 3 validation images into class folders"
    assert subprocess.run(script, capture_output=True, text=True).stdout.startswith("moved 0")
    data = load_folder(f"folder:{root}", 0.0, 8, 0, val_indices=None)
    assert (len(data.train), len(data.test), data.num_classes) == (2, 3, 2)
    assert [label for _, label in data.test.images.samples] == [0, 1, 1]


def test_the_research_presets_run_on_an_image_folder_and_say_where_the_data_are(folder, tmp_path, capsys):
    small = ["--epochs", "1", "--warmup-epochs", "0", "--batch-size", "16", "--image-size", "16",
             "--methods", "gmp", "--seeds", "0", "--sparsities", "0.5", "--data-workers", "0",
             "--executor", "inline", "--no-plots", "--no-progress"]
    assert main(["--preset", "tinyimagenet-resnet18", "--dataset", f"folder:{folder}", *small,
                 "--out", str(tmp_path / "tiny")]) == 0
    result = json.loads(next((tmp_path / "tiny" / "runs").glob("*/result.json")).read_text())
    assert (result["spec"]["model"], result["metrics"]["num_classes"]) == ("tv:resnet18", CLASSES)
    capsys.readouterr()
    assert main(["--preset", "imagenet-resnet50", *small, "--out", str(tmp_path / "in")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset 'folder:data/imagenet': expected" in err[0]


def test_training_reports_its_progress_inside_an_epoch(folder):
    from benchmark.engine import train
    from benchmark.spec import RunSpec
    seen = []
    spec = RunSpec(dataset=f"folder:{folder}", image_size=16, data_workers=0, model="mlp", method="gmp",
                   target_sparsity=0.5, epochs=2, batch_size=4)
    assert train.run(spec, progress=lambda done, total: seen.append((done, total)))["status"] == "complete"
    steps = TRAIN // 4  # 15 batches an epoch: a report after each but the last, then the epoch's own
    expected = [done for e in range(2) for done in [e + k / steps for k in range(1, steps)] + [e + 1]]
    assert seen == [(done, 2) for done in expected]
