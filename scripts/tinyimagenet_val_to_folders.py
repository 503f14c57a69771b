"""Reorganise Tiny-ImageNet's validation split into the ImageFolder layout ``--dataset folder:`` reads.

The download (tiny-imagenet-200.zip) keeps its 10,000 validation images in one folder,
``val/images/``, with their classes in ``val/val_annotations.txt`` (``<file>\\t<wnid>\\t<box>``);
its training images are already in class folders (``train/<wnid>/images/``, read recursively).
This moves each validation image to ``val/<wnid>/<file>``, once; a second run finds nothing to move.

    python scripts/tinyimagenet_val_to_folders.py data/tiny-imagenet-200
"""
from __future__ import annotations

import sys
from pathlib import Path


def reorganise(root: Path) -> int:
    """Move every annotated validation image into its class folder; returns how many moved."""
    val = root / "val"
    annotations = val / "val_annotations.txt"
    if not annotations.is_file():
        raise SystemExit(f"error: {annotations} not found (is {root} the unzipped tiny-imagenet-200?)")
    moved = 0
    for line in annotations.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        source = val / "images" / fields[0]
        if source.is_file():
            (val / fields[1]).mkdir(exist_ok=True)
            source.rename(val / fields[1] / fields[0])
            moved += 1
    return moved


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/tinyimagenet_val_to_folders.py TINY_IMAGENET_DIR")
    print(f"moved {reorganise(Path(sys.argv[1]))} validation images into class folders")
