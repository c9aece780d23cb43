"""The ``loopy`` generator: Loopy's long-term motion dependence, in motion space (seed 001; METHODS.md).

Loopy (Jiang et al. 2024) drives a portrait from audio alone, without spatial templates,
by giving the generator (a) a long view of the motion it has already produced and (b) an
audio condition tied to motion. Here both act on the motion space:

- Inter/intra-clip temporal layers (Loopy §3.2): the clip being generated (N frames)
  attends to itself (intra-clip) and, in a separate attention, to its own frames plus the
  tokens of the motion context (inter-clip); the context is the previous frames compressed by the
  temporal segment module (Loopy §3.2, "temporal segment module"): segment i holds ``s``
  tokens sampled every r^i frames, so nearer frames are kept dense and older ones sparse
  (here 5 segments of 4 tokens: 20 tokens for the last 124 frames, ~5 s at 25 fps, where a
  plain prefix of 20 frames would see 0.8 s).
- Audio-to-latents (Loopy §3.3): a bank of learnable latents is read by an attention whose
  query is the audio of each frame or, in training, motion signals of the real motion
  (mouth-motion speed, head-motion variance, expression variance); the result joins the
  timestep embedding. At sampling only audio queries it, so audio learns to point at the
  latents that real motion dynamics picked.

The denoiser is EDM-preconditioned (one contract for every model) with classifier-free
guidance on audio; any length comes out clip by clip, each clip conditioned on the
context of everything generated before it. ``long_context`` and ``audio_to_latents`` turn
the two parts off for ablations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from avatar.generators.learned import LearnedGenerator
from avatar.generators.motion_vector import GLOBAL_SCALES


@dataclass
class LoopyConfig:
    fps: float = 25.0
    clip: int = 20  # N: frames generated per clip (0.8 s at 25 fps)
    segments: int = 5  # temporal segment module: segments of motion context ...
    segment_tokens: int = 4  # ... of s tokens each ...
    segment_ratio: int = 2  # ... sampled every r^j frames in segment j
    long_context: bool = True  # False: one segment only (the last s frames, like a prefix)
    audio_context: int = 2  # audio frames seen on each side of a frame (coarticulation)
    n_mels: int = 40
    width: int = 128
    depth: int = 4
    heads: int = 4
    latents: int = 16  # audio-to-latents: size of the learnable latent bank
    audio_to_latents: bool = True
    motion_query_probability: float = 0.5  # training: latents queried by motion signals this often
    sigma_data: float = 1.0  # motion is standardised per channel
    steps: int = 6  # 6 vs 8 or 10 steps: the same figures on tuning clips, and 60 s in < 3 s (measured)
    guidance: dict = field(default_factory=lambda: {"audio": 1.5})
    # Guide only at these noise levels (Kynkaanniemi et al. 2024): of the 6 steps, the ones
    # at sigma 24, 5.8 and 1.0; the rest are one network call each (tuning clips: same figures).
    guidance_interval: tuple = (0.2, 30.0)
    global_scales: dict = field(default_factory=lambda: dict(GLOBAL_SCALES))

    @property
    def used_segments(self) -> int:
        return self.segments if self.long_context else 1


def build_loopy(config: LoopyConfig, **stats):
    """A fresh LoopyModel (torch imported here); ``stats`` are mean, std, audio_mean, audio_std."""
    from avatar.generators.loopy_model import LoopyModel

    return LoopyModel(asdict(config), **stats)


def untrained():
    return build_loopy(LoopyConfig())


class LoopyGenerator(LearnedGenerator):
    """Speech -> motion with a trained Loopy checkpoint (``avatar train --method loopy``)."""

    name = "loopy"
