"""The ``vlogger`` generator: VLOGGER's audio-to-motion diffusion for face AND upper body (seed 002; METHODS.md).

VLOGGER (Corona et al. 2024, §3.1 "audio-driven motion generation") turns speech into 3D
face and body controls with a temporal diffusion model; here, in our motion space:

- a transformer of 4 attention layers over time with a CAUSAL mask (a frame attends only
  to itself and earlier frames), sinusoidal encodings of the frame index and of the
  diffusion step, trained on windows of varying length;
- it predicts the clean sample x0, not the noise (:class:`~avatar.diffusion.edm.X0Precond`
  behind the one denoiser contract D(x, sigma, cond) -> x0);
- the sample is the face (facial actions with blinks, gaze), the head pose AND the upper
  body: shoulder, elbow, wrist and hip joints as residuals on the reference pose
  (pose_i = pose_ref + delta_i, ``MotionSeq.upper_body``), so zero motion is the photo's
  own pose;
- any length by temporal outpainting (§3.1, "temporal outpainting"): N frames first, then
  N' = N - overlap new frames at a time, each window conditioned on the last ``overlap``
  frames already generated (given to the network as known frames and kept as they are).

Audio reaches every frame with ``audio_context`` frames on each side: the mask keeps motion
causal, but a mouth must open before its sound (coarticulation), so a frame sees a little
of the coming audio. Classifier-free guidance on audio, in an interval of noise levels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from avatar.generators.learned import LearnedGenerator
from avatar.generators.motion_vector import GLOBAL_SCALES


@dataclass
class VloggerConfig:
    fps: float = 25.0
    window: int = 50  # N: frames of one outpainting window (2 s at 25 fps)
    overlap: int = 10  # N - N': frames of the previous window each new one is conditioned on
    min_window: int = 20  # training windows are N frames or fewer, down to this (variable length)
    audio_context: int = 2  # audio frames seen on each side of a frame
    n_mels: int = 40
    width: int = 128
    depth: int = 4  # VLOGGER: 4 temporal attention layers
    heads: int = 4
    sigma_data: float = 1.0  # motion is standardised per channel
    steps: int = 8
    guidance: dict = field(default_factory=lambda: {"audio": 1.5})
    guidance_interval: tuple = (0.2, 30.0)  # guide only at these noise levels (Kynkaanniemi et al. 2024)
    global_scales: dict = field(default_factory=lambda: dict(GLOBAL_SCALES))


def build_vlogger(config: VloggerConfig, **stats):
    """A fresh VloggerModel (torch is imported here); ``stats`` are mean, std, audio_mean, audio_std."""
    from avatar.generators.vlogger_model import VloggerModel

    return VloggerModel(asdict(config), **stats)


def untrained():
    return build_vlogger(VloggerConfig())


class VloggerGenerator(LearnedGenerator):
    """Speech -> face, head and upper-body motion with a trained VLOGGER checkpoint
    (``avatar train --method vlogger``)."""

    name = "vlogger"
