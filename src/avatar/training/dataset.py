"""Reading a prepared dataset folder (``avatar prepare``) for training and evaluation."""

from __future__ import annotations

from pathlib import Path

from avatar.data.clip import SUFFIX, load_clip
from avatar.errors import AvatarError


def load_dataset(folder) -> list:
    """Every clip of a dataset folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AvatarError("dataset folder not found", str(folder), "make one with: avatar prepare VIDEO... -o DATASET")
    clips = [load_clip(p) for p in sorted(folder.glob(f"*{SUFFIX}"))]
    if not clips:
        raise AvatarError("the dataset has no clips", str(folder),
                          "prepare some videos first (see the skip reasons in its report.json)")
    return clips
