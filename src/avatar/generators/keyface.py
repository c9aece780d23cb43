"""The ``keyface`` generator: KeyFace's two-stage motion diffusion (seed 003; METHODS.md).

Stage 1 (KeyFace §3.2): a keyframe model generates T keyframes S frames apart (5 fps at
25 fps video) from audio, gaze/distance and per-frame valence/arousal; long sequences are
windows of T keyframes, each conditioned on the previous window's last P keyframes, so
the keyframes anchor the whole sequence. Stage 2 (KeyFace §3.3): an interpolation model
fills the S-1 frames between consecutive keyframes z_s, z_e from {z_s, z_m, ..., z_m, z_e}
(z_m a learned missing-frame embedding) and a binary mask, conditioned on the full-rate
audio of those frames; all gaps are one batch. Both stages are the same backbone
(:class:`~avatar.diffusion.transformer.MotionTransformer`) in the EDM formulation
(KeyFace §3.1). Guidance (KeyFace §3.7): classifier-free for the keyframes, autoguidance
for the interpolation (a snapshot of the interpolation network at 1/16 of training is the
weak model, kept in the same checkpoint).

Audio (KeyFace §3.4): two streams concatenated per frame, the speech stream of
:func:`~avatar.generators.motion_vector.audio_frames` and the general-sound stream of
:func:`avatar.audio.sound.sound_frames` (laughs, sighs, breaths).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from avatar.audio.sound import SOUND_CHANNELS
from avatar.generators.learned import LearnedGenerator
from avatar.generators.motion_vector import GLOBAL_SCALES


@dataclass
class KeyFaceConfig:
    fps: float = 25.0
    stride: int = 5  # S: frames between keyframes (keyframes at 5 fps)
    keyframes: int = 16  # T: keyframes per window (3.2 s at S=5, 25 fps)
    prefix: int = 4  # P: previous-window keyframes each window is conditioned on
    n_mels: int = 40
    sound_channels: int = len(SOUND_CHANNELS)
    width: int = 128
    depth: int = 4  # keyframe model
    interp_width: int = 96
    interp_depth: int = 3  # interpolation model (short sequences of S+1 frames)
    interp_audio_context: int = 2  # audio frames it sees on each side of a frame
    heads: int = 4
    sigma_data: float = 1.0  # motion is standardised per channel
    steps: int = 10
    interp_steps: int = 6
    guidance: dict = field(default_factory=lambda: {"audio": 1.5})  # CFG of the keyframe model
    autoguidance: float = 1.5  # w_auto of the interpolation model (1 = off)
    weak_fraction: float = 1.0 / 16  # the weak interpolation model: snapshot at this fraction of training
    global_scales: dict = field(default_factory=lambda: dict(GLOBAL_SCALES))


def build_keyface(config: KeyFaceConfig, **stats):
    """A fresh KeyFaceModel (torch imported here); ``stats`` are mean, std, audio_mean,
    audio_std."""
    from avatar.generators.keyface_model import KeyFaceModel

    return KeyFaceModel(asdict(config), **stats)


def untrained():
    return build_keyface(KeyFaceConfig())


class KeyFaceGenerator(LearnedGenerator):
    """Speech -> motion with a trained KeyFace checkpoint (``avatar train --method keyface``)."""

    name = "keyface"
