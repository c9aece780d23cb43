"""The motion vector and audio frames every learned generator shares.

Learned generators (vasa, keyface, loopy, ...) see motion as one (T, MOTION_DIM) array of
named channel groups and audio as (T, Ca) per-frame features; this module is the one
place that converts between those arrays and :class:`~avatar.motion.types.MotionSeq` /
:class:`~avatar.audio.types.AudioFeatures`, and that derives the global conditions (gaze,
head distance, emotion) a stretch of real motion is trained with.
"""

from __future__ import annotations

import numpy as np

from avatar.audio.types import AudioFeatures
from avatar.motion.types import ACTIONS, BODY_JOINTS, MotionSeq

# -- the motion vector: named channel groups, concatenated in this order -------------------
MOTION_GROUPS: dict[str, int] = {"actions": len(ACTIONS), "rotation": 3, "translation": 2, "gaze": 2}
MOTION_DIM = sum(MOTION_GROUPS.values())
# Generators that also move the upper body (vlogger) append MotionSeq.upper_body, flattened
# joint by joint as (x, y), after the motion vector: (T, MOTION_DIM + BODY_DIM).
BODY_DIM = 2 * len(BODY_JOINTS)
MOUTH_ACTIONS = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRollLower",
                 "mouthStretchL", "mouthStretchR", "upperLipRaise", "lowerLipDown")
# Per-frame audio condition: log-mel bands, loudness, onset strength, voice activity,
# log pitch and a voicing flag.
PITCH_REFERENCE_HZ = 150.0
AUDIO_SCALARS = 5  # channels after the mel bands
GLOBAL_CONDS = {"gaze": 2, "distance": 1, "emotion": 2}
# What one unit of each global condition means at the network's input (the condition is
# divided by it): gaze in radians (0.1 rad ~ 6 deg), log head distance, valence/arousal in
# [-1, 1]. Raw radians of gaze are ~0.03 on real clips, too small for the model to notice.
GLOBAL_SCALES = {"gaze": 0.1, "distance": 0.1, "emotion": 0.5}
AUDIO = "audio"


def group_slices() -> dict[str, slice]:
    """Channel slice of each motion group in the motion vector."""
    out, start = {}, 0
    for name, width in MOTION_GROUPS.items():
        out[name] = slice(start, start + width)
        start += width
    return out


def action_channels(names) -> list[int]:
    """Motion-vector channels of the named facial actions."""
    offset = group_slices()["actions"].start
    return [offset + ACTIONS.index(n) for n in names]


def motion_to_array(seq: MotionSeq) -> np.ndarray:
    """(T, MOTION_DIM) motion vectors of a sequence (scale is a condition, not motion)."""
    return np.concatenate([getattr(seq, name) for name in MOTION_GROUPS], axis=1).astype(np.float32)


def array_to_motion(x: np.ndarray, fps: float, scale: float) -> MotionSeq:
    """Inverse of :func:`motion_to_array`, with a constant head scale; BODY_DIM more
    channels, when there, are the upper-body motion."""
    parts = {name: x[:, s] for name, s in group_slices().items()}
    body = x[:, MOTION_DIM:MOTION_DIM + BODY_DIM].reshape(len(x), len(BODY_JOINTS), 2) \
        if x.shape[1] >= MOTION_DIM + BODY_DIM else None
    return MotionSeq(fps=fps, scale=np.full(len(x), scale, np.float32), upper_body=body, **parts)


def audio_frames(features: AudioFeatures) -> np.ndarray:
    """(T, Ca) per-frame audio condition."""
    voiced = features.pitch > 0
    log_pitch = np.where(voiced, np.log(np.maximum(features.pitch, 1.0) / PITCH_REFERENCE_HZ), 0.0)
    cols = [features.mel, features.energy[:, None], features.onset[:, None],
            features.vad[:, None], log_pitch[:, None], voiced[:, None]]
    return np.concatenate(cols, axis=1).astype(np.float32)


def audio_dim(n_mels: int) -> int:
    return n_mels + AUDIO_SCALARS


def emotion_proxy(seq: MotionSeq) -> np.ndarray:
    """(2,) valence/arousal stand-ins for a stretch of real motion, in about [-1, 1]:
    valence from smiling minus frowning, arousal from how much the head moves. Training
    clips carry no emotion labels; these make the emotion control learnable."""
    smile = 0.5 * (seq.action("mouthSmileL") + seq.action("mouthSmileR")).mean()
    frown = 0.5 * (seq.action("mouthFrownL") + seq.action("mouthFrownR")).mean()
    speed = np.abs(np.diff(seq.rotation, axis=0)).mean() if len(seq) > 1 else 0.0
    valence = np.tanh(4.0 * (smile - frown))
    arousal = np.tanh(400.0 * speed - 1.0)  # ~0.0025 rad/frame (typical talking) -> 0
    return np.array([valence, arousal], np.float32)


def global_conditions(gaze, distance: float, valence: float, arousal: float) -> dict[str, np.ndarray]:
    return {"gaze": np.asarray(gaze, np.float32).reshape(2),
            "distance": np.array([np.log(distance)], np.float32),
            "emotion": np.array([valence, arousal], np.float32)}


def retime(x: np.ndarray, fps: float, new_fps: float, length: int | None = None) -> np.ndarray:
    """(T, C) frames at ``fps`` -> (length, C) at ``new_fps`` by linear interpolation."""
    if length is None:
        length = int(round(len(x) * new_fps / fps))
    if abs(fps - new_fps) < 1e-9 and length == len(x):
        return x
    t_new = np.arange(length) / new_fps
    t_old = np.arange(len(x)) / fps
    return np.stack([np.interp(t_new, t_old, x[:, c]) for c in range(x.shape[1])], 1).astype(np.float32)
