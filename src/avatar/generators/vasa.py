"""The ``vasa`` generator: VASA-1's holistic motion diffusion (seed 004; METHODS.md).

One diffusion transformer generates facial actions, head pose and gaze together (VASA-1
§3.2: lips, expression, gaze and blink are one latent), conditioned on per-frame audio
features and on the main gaze direction, head distance and emotion (§3.2 "conditioning
signals"); every condition is dropped at random in training and guided on its own at
sampling (classifier-free guidance, Ho & Salimans 2022). Any length comes out of sliding
windows of N frames, each conditioned on the previous window's last K generated frames
(§3.2, "sliding window"), with 10 sampling steps by default (VASA-1 §4.3: 50 -> 10 steps
cost little quality).

Motion is identity-independent (facial-action coefficients and head pose relative to the
source), so motion learned from one person drives any photo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from avatar.audio.types import AudioFeatures, Speech
from avatar.errors import AvatarError
from avatar.generators.base import Controls
from avatar.motion.types import ACTIONS, MotionSeq

# -- the motion vector: named channel groups, concatenated in this order -------------------
MOTION_GROUPS: dict[str, int] = {"actions": len(ACTIONS), "rotation": 3, "translation": 2, "gaze": 2}
MOTION_DIM = sum(MOTION_GROUPS.values())
MOUTH_ACTIONS = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRollLower",
                 "mouthStretchL", "mouthStretchR", "upperLipRaise", "lowerLipDown")
# Per-frame audio condition: log-mel bands, loudness, onset strength, voice activity,
# log pitch and a voicing flag.
PITCH_REFERENCE_HZ = 150.0
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
    """Inverse of :func:`motion_to_array`, with a constant head scale."""
    parts = {name: x[:, s] for name, s in group_slices().items()}
    return MotionSeq(fps=fps, scale=np.full(len(x), scale, np.float32), **parts)


def audio_frames(features: AudioFeatures) -> np.ndarray:
    """(T, Ca) per-frame audio condition."""
    voiced = features.pitch > 0
    log_pitch = np.where(voiced, np.log(np.maximum(features.pitch, 1.0) / PITCH_REFERENCE_HZ), 0.0)
    cols = [features.mel, features.energy[:, None], features.onset[:, None],
            features.vad[:, None], log_pitch[:, None], voiced[:, None]]
    return np.concatenate(cols, axis=1).astype(np.float32)


def audio_dim(n_mels: int) -> int:
    return n_mels + 5


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


# -- the model ---------------------------------------------------------------------------------
@dataclass
class VasaConfig:
    fps: float = 25.0
    window: int = 50  # N: frames generated per window (2 s at 25 fps)
    prefix: int = 10  # K: previous-window frames each window is conditioned on
    n_mels: int = 40
    width: int = 128
    depth: int = 4
    heads: int = 4
    sigma_data: float = 1.0  # motion is standardised per channel
    steps: int = 10
    guidance: dict = field(default_factory=lambda: {"audio": 1.5})
    global_scales: dict = field(default_factory=lambda: dict(GLOBAL_SCALES))


def build_vasa(config: VasaConfig, **stats):
    """A fresh VasaModel (torch is imported here, not at module import); ``stats`` are the
    normalisation arrays mean, std, audio_mean, audio_std."""
    from avatar.generators.vasa_model import VasaModel

    return VasaModel(asdict(config), **stats)


class VasaGenerator:
    """Speech -> motion with a trained VASA checkpoint (see ``avatar train --method vasa``)."""

    name = "vasa"

    def __init__(self, checkpoint=None, steps: int | None = None, guidance: dict | None = None):
        if checkpoint is None:
            raise AvatarError("the vasa generator needs a trained checkpoint", "--checkpoint",
                              "train one with: avatar train --method vasa --data DATASET -o vasa.safetensors")
        from avatar.diffusion.checkpoint import load_model

        self.model = load_model(checkpoint)
        if getattr(self.model, "kind", None) != "vasa":
            raise AvatarError("not a vasa checkpoint", str(checkpoint))
        self.steps = steps
        self.guidance = guidance

    def generate(self, speech: Speech, features: AudioFeatures, controls: Controls = Controls(),
                 seed: int = 0) -> MotionSeq:
        model_fps = self.model.config["fps"]
        audio = _retime(audio_frames(features), features.fps, model_fps)  # (T', Ca)
        x = self.model.generate(audio, global_conditions(controls.gaze, controls.head_distance,
                                                         controls.valence, controls.arousal),
                                seed=seed, steps=self.steps, guidance=self.guidance)  # (T', C)
        x = _retime(x, model_fps, features.fps, features.num_frames)  # (T, C)
        x[:, group_slices()["rotation"]] *= controls.head_motion
        x[:, group_slices()["translation"]] *= controls.head_motion
        return array_to_motion(x, features.fps, controls.head_distance)


def _retime(x: np.ndarray, fps: float, new_fps: float, length: int | None = None) -> np.ndarray:
    """(T, C) frames at ``fps`` -> (length, C) at ``new_fps`` by linear interpolation."""
    if length is None:
        length = int(round(len(x) * new_fps / fps))
    if abs(fps - new_fps) < 1e-9 and length == len(x):
        return x
    t_new = np.arange(length) / new_fps
    t_old = np.arange(len(x)) / fps
    return np.stack([np.interp(t_new, t_old, x[:, c]) for c in range(x.shape[1])], 1).astype(np.float32)
