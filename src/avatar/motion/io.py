"""The one place where motion is serialised.

Native format (``.npz``, see docs/motion-format.md): arrays ``rotation`` (T, 3),
``translation`` (T, 2), ``scale`` (T,), ``actions`` (T, A), ``gaze`` (T, 2), optional
``body`` / ``hands`` / ``upper_body``, and ``meta``: a JSON string with ``format`` = "avatar-motion",
``version``, ``fps`` and ``action_names`` (the column names of ``actions``). Loading maps
columns by name, so files stay readable when the action set grows.

Exports for 3D tools: CSV (one row per frame, one column per curve) and JSON (curves by
name). Files are written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from avatar.errors import AvatarError
from avatar.fileio import CONTENT_ERRORS, atomic_write, open_archive
from avatar.motion.types import ACTIONS, MotionSeq

FORMAT = "avatar-motion"
VERSION = 1
BODY_SHAPE, HANDS_SHAPE = (33, 3), (2, 21, 3)  # per frame: pose world joints, both hands' joints
POSE_COLUMNS = ("headYaw", "headPitch", "headRoll", "headX", "headY", "headScale", "gazeX", "gazeY")


def save_motion(seq: MotionSeq, path) -> None:
    """Write the native ``.npz`` motion file."""
    meta = {"format": FORMAT, "version": VERSION, "fps": seq.fps, "action_names": list(ACTIONS)}
    arrays = dict(rotation=seq.rotation, translation=seq.translation, scale=seq.scale,
                  actions=seq.actions, gaze=seq.gaze, meta=np.array(json.dumps(meta)))
    if seq.body is not None:
        arrays["body"] = seq.body
    if seq.hands is not None:
        arrays["hands"] = seq.hands
    if seq.upper_body is not None:
        arrays["upper_body"] = seq.upper_body
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def load_motion(path) -> MotionSeq:
    """Read a native motion file; action columns are matched by name."""
    data, meta = open_archive(path, FORMAT, VERSION, "motion")
    try:
        return motion_from_arrays(data, meta["action_names"], float(meta["fps"]))
    except CONTENT_ERRORS as e:  # arrays of the wrong shape or type, odd JSON values
        raise AvatarError(f"damaged avatar motion file ({e.__class__.__name__}: {e})", str(path),
                          "export the motion again (avatar speak --export-motion)") from None


def motion_from_arrays(data, action_names, fps: float) -> MotionSeq:
    """A MotionSeq from arrays named as in this module (any mapping, e.g. an open .npz);
    ``action_names`` name the columns of ``data["actions"]``, matched to ACTIONS by name
    (unknown names dropped, missing ones 0). ValueError (or another of
    avatar.fileio.CONTENT_ERRORS) for arrays that do not fit."""
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"the frame rate {fps!r} is not a positive number")
    if isinstance(action_names, (str, dict)) or not all(isinstance(name, str) for name in action_names):
        raise ValueError("action_names is not a list of names")
    T = len(data["rotation"])
    actions = np.zeros((T, len(ACTIONS)), np.float32)
    for j, name in enumerate(action_names):
        if name in ACTIONS:
            actions[:, ACTIONS.index(name)] = data["actions"][:, j]
    return MotionSeq(fps=fps, rotation=data["rotation"], translation=data["translation"],
                     scale=data["scale"], actions=actions, gaze=data["gaze"],
                     body=_per_frame(data, "body", (T, *BODY_SHAPE)),
                     hands=_per_frame(data, "hands", (T, *HANDS_SHAPE)),
                     upper_body=data["upper_body"] if "upper_body" in data else None)


def _per_frame(data, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """Optional array ``name`` as float32 ``shape`` (MotionSeq checks only its required
    arrays); None if absent, ValueError if it does not fit."""
    if name not in data:
        return None
    return np.asarray(data[name], np.float32).reshape(shape)


def curves(seq: MotionSeq) -> dict[str, np.ndarray]:
    """Every exported curve by name: the facial actions, then head pose and gaze."""
    out = {name: seq.action(name) for name in ACTIONS}
    pose = np.concatenate([seq.rotation, seq.translation, seq.scale[:, None], seq.gaze], axis=1)
    out.update({name: pose[:, j] for j, name in enumerate(POSE_COLUMNS)})
    return out


def export_csv(seq: MotionSeq, path) -> None:
    """One row per frame: frame, time (s), then every curve (actions 0..1, angles radians)."""
    c = curves(seq)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["frame", "time", *c])
    cols = np.stack(list(c.values()), 1)
    for i, row in enumerate(cols):
        writer.writerow([i, f"{i / seq.fps:.4f}", *(f"{v:.5f}" for v in row)])
    atomic_write(Path(path), lambda f: f.write(buf.getvalue().encode()))


def export_json(seq: MotionSeq, path) -> None:
    """``{"fps", "num_frames", "curves": {name: [values...]}}``."""
    doc = {"format": FORMAT + "-curves", "version": VERSION, "fps": seq.fps, "num_frames": len(seq),
           "units": {"actions": "0..1", "headYaw/Pitch/Roll": "radians", "headX/Y": "face widths",
                     "gazeX/Y": "radians"},
           "curves": {k: np.round(v.astype(float), 5).tolist() for k, v in curves(seq).items()}}
    atomic_write(Path(path), lambda f: f.write(json.dumps(doc).encode()))


def write_motion(seq: MotionSeq, path) -> None:
    """Save by extension: .npz (native), .csv or .json (curves for 3D tools)."""
    suffix = Path(path).suffix.lower()
    writers = {".npz": save_motion, ".csv": export_csv, ".json": export_json}
    if suffix not in writers:
        raise AvatarError(f"unknown motion file type {suffix!r}", str(path),
                          "use .npz (native), .csv or .json")
    writers[suffix](seq, path)
