"""Untrusted files never run code on load (issue 13, part 5).

(a) Files carrying a pickle whose unpickling would create a marker file - an object array
    in an .npz, a torch.save checkpoint, a bare pickle - are refused with AvatarError by
    every loader, and the marker never appears. (b) The source has no unpickling, eval/exec
    or unsafe YAML at all, so no loader can reach one.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from avatar.errors import AvatarError

from test_fuzz_regressions import (load_bundle, load_checkpoint, load_clip, load_image, load_motion,
                                   write_bundle, write_checkpoint, write_clip, write_motion)

SRC = Path(__file__).resolve().parents[1] / "src" / "avatar"


class Payload:
    """Unpickling this object opens (creates) ``marker``: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def object_array(marker: Path) -> np.ndarray:
    array = np.empty(1, dtype=object)
    array[0] = Payload(marker)
    return array


def with_pickled_array(path: Path, key: str, marker: Path) -> None:
    """Rewrite the npz at ``path`` with array ``key`` an object array (stored pickled)."""
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays[key] = object_array(marker)
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # allow_pickle=True by default when writing


def assert_refused_without_running(load, path, marker: Path) -> None:
    with pytest.raises(AvatarError):
        load(path)
    assert not marker.exists(), "loading the file ran its pickled code"


@pytest.mark.parametrize("key", ["meta", "rotation", "upper_body"])
def test_motion_file_with_a_pickled_array_is_refused(tmp_path, key):
    path, marker = write_motion(tmp_path), tmp_path / "ran"
    with_pickled_array(path, key, marker)
    assert_refused_without_running(load_motion, path, marker)


@pytest.mark.parametrize("key", ["meta", "landmarks", "body_points"])
def test_clip_with_a_pickled_array_is_refused(tmp_path, key):
    path, marker = write_clip(tmp_path), tmp_path / "ran"
    with_pickled_array(path, key, marker)
    assert_refused_without_running(load_clip, path, marker)


@pytest.mark.parametrize("member, key", [("track.npz", "body_world"), ("graph.npz", "graph_starts"),
                                         ("embeddings.npz", "low"), ("mouth.npz", "patches")])
def test_bundle_with_a_pickled_array_is_refused(tmp_path, member, key):
    folder, marker = write_bundle(tmp_path), tmp_path / "ran"
    with_pickled_array(folder / member, key, marker)
    assert_refused_without_running(load_bundle, folder, marker)


def test_bare_pickles_are_refused_by_every_loader(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps(Payload(marker))
    for write, load in ((write_motion, load_motion), (write_checkpoint, load_checkpoint),
                        (write_clip, load_clip)):
        folder = tmp_path / write.__name__
        folder.mkdir()
        path = write(folder)
        path.write_bytes(payload)
        assert_refused_without_running(load, path, marker)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(payload)
    assert_refused_without_running(load_image, photo, marker)


def test_torch_save_checkpoints_are_refused(tmp_path):
    """A torch.save file (a zip holding a pickle) named like a checkpoint, as --checkpoint
    and as an avatar's AuMoCLIP model."""
    import torch

    from avatar.gesture.bundle import MODEL
    from avatar.gesture.bundle import load_bundle as read_bundle

    marker = tmp_path / "ran"
    path = write_checkpoint(tmp_path)
    torch.save({"state_dict": {}, "config": Payload(marker)}, path)
    assert_refused_without_running(load_checkpoint, path, marker)
    folder = write_bundle(tmp_path / "avatar")
    torch.save(Payload(marker), folder / MODEL)
    assert_refused_without_running(lambda f: read_bundle(f).model(), folder, marker)


def test_bundle_metadata_is_plain_json(tmp_path):
    """bundle.json is read with json: a pickle or Python literal in it is just bad JSON."""
    folder, marker = write_bundle(tmp_path), tmp_path / "ran"
    (folder / "bundle.json").write_bytes(pickle.dumps(Payload(marker)))
    assert_refused_without_running(load_bundle, folder, marker)
    (folder / "bundle.json").write_text(json.dumps({"format": "avatar-bundle", "version": 1})[:-1]
                                        + ', "name": __import__("os")}')
    assert_refused_without_running(load_bundle, folder, marker)


# -- (b) the source holds no way to run a file's code ----------------------------------------
FORBIDDEN = {
    "pickle / its relatives": r"\b(c?[Pp]ickle|dill|cloudpickle|joblib|marshal|shelve)\b",
    "np.load(allow_pickle=True)": r"allow_pickle\s*=\s*True",
    "torch.load": r"\btorch\.load\s*\(",
    "eval()": r"(?<![.\w])eval\s*\(",
    "exec()": r"(?<![.\w])exec\s*\(",
    "__import__ / compile()": r"(?<![.\w])(__import__|compile)\s*\(",
    "yaml.load (unsafe)": r"\byaml\.(unsafe_)?load\s*\(",
}


def source_files() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50  # the scan sees the package
    return files


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_source_has_no_code_execution_on_load(name):
    pattern = re.compile(FORBIDDEN[name])
    hits = [f"{path.relative_to(SRC)}:{i}: {line.strip()}"
            for path in source_files() for i, line in enumerate(path.read_text().splitlines(), 1)
            if pattern.search(line.split("#")[0])]
    assert not hits, f"{name} in src/avatar:\n" + "\n".join(hits)


def test_checkpoints_import_only_model_modules():
    """A checkpoint's spec names the module that defines its model; only modules that do
    define one (@register_model) may be imported, and every such module is allowed."""
    from avatar.diffusion.checkpoint import MODEL_MODULES

    defining = {".".join(("avatar", *path.relative_to(SRC).with_suffix("").parts))
                for path in source_files() if re.search(r"^@register_model\(", path.read_text(), re.M)}
    assert set(MODEL_MODULES) == defining
