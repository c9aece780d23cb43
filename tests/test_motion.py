import csv
import json

import numpy as np
import pytest

from avatar.errors import AvatarError
from avatar.motion import ACTIONS, MotionSeq
from avatar.motion.io import export_csv, export_json, load_motion, save_motion, write_motion


def _random_seq(T=30, seed=0):
    rng = np.random.default_rng(seed)
    return MotionSeq(fps=25.0, rotation=rng.normal(0, 0.1, (T, 3)),
                     translation=rng.normal(0, 0.02, (T, 2)), scale=1 + rng.normal(0, 0.01, T),
                     actions=rng.uniform(0, 1, (T, len(ACTIONS))), gaze=rng.normal(0, 0.1, (T, 2)))


def test_named_access_is_a_view():
    seq = MotionSeq.neutral(10, 25)
    seq.set_action("jawOpen", np.linspace(0, 1, 10))
    assert seq.action("jawOpen")[-1] == pytest.approx(1.0)
    assert seq[9].action("jawOpen") == pytest.approx(1.0)
    seq.action("eyeBlinkL")[:] = 1
    seq.action("eyeBlinkR")[:] = 0.5
    assert seq.blink == pytest.approx(0.75)
    with pytest.raises(KeyError, match="unknown facial action"):
        seq.action("jawClench")
    assert len(seq.slice(2, 5)) == 3 and seq.duration == pytest.approx(0.4)


def test_save_load_roundtrip(tmp_path):
    seq = _random_seq()
    save_motion(seq, tmp_path / "m.npz")
    back = load_motion(tmp_path / "m.npz")
    assert back.fps == seq.fps
    for name in ("rotation", "translation", "scale", "actions", "gaze"):
        np.testing.assert_allclose(getattr(back, name), getattr(seq, name))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp files left


def test_load_maps_columns_by_name(tmp_path):
    seq = _random_seq(5)
    path = tmp_path / "m.npz"
    save_motion(seq, path)
    data = dict(np.load(path))
    meta = json.loads(str(data["meta"]))
    meta["action_names"] = meta["action_names"][::-1]  # a file with another column order
    data["actions"] = data["actions"][:, ::-1]
    data["meta"] = np.array(json.dumps(meta))
    np.savez(path, **data)
    np.testing.assert_allclose(load_motion(path).actions, seq.actions)


def test_csv_and_json_exports(tmp_path):
    seq = _random_seq(12)
    export_csv(seq, tmp_path / "m.csv")
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert len(rows) == 12 and float(rows[3]["time"]) == pytest.approx(3 / 25)
    assert float(rows[5]["jawOpen"]) == pytest.approx(seq.action("jawOpen")[5], abs=1e-4)
    assert float(rows[5]["headYaw"]) == pytest.approx(seq.rotation[5, 0], abs=1e-4)
    export_json(seq, tmp_path / "m.json")
    doc = json.load(open(tmp_path / "m.json"))
    assert doc["fps"] == 25 and doc["num_frames"] == 12
    assert doc["curves"]["mouthSmileL"][7] == pytest.approx(seq.action("mouthSmileL")[7], abs=1e-4)


def test_bad_motion_files(tmp_path):
    with pytest.raises(AvatarError, match="unknown motion file type"):
        write_motion(_random_seq(3), tmp_path / "m.bvh")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(AvatarError, match="not an avatar motion file"):
        load_motion(tmp_path / "junk.npz")
