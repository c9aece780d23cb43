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

from avatar.generators.learned import LearnedGenerator
from avatar.generators.motion_vector import GLOBAL_SCALES


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


def untrained():
    return build_vasa(VasaConfig())


class VasaGenerator(LearnedGenerator):
    """Speech -> motion with a trained VASA checkpoint (see ``avatar train --method vasa``)."""

    name = "vasa"
