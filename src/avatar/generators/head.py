"""Head pose: prosody-driven rotation + a smooth random component, translation and scale.

- Pitch (chin up/down) follows the F0 contour (Yehia et al. 2002 report F0-head motion
  correlations around 0.7-0.8) and nods down on emphasised syllables (Graf et al. 2002).
- Yaw and roll are mostly free, slow, smooth variation (a critically damped
  Ornstein-Uhlenbeck process: fast + slow components) whose amplitude grows while
  speaking and with loudness; roll partly follows yaw (the head tilts into turns).
- Amplitudes are typical of talking-head footage (std yaw ~4 deg, pitch ~2.5-3 deg,
  roll ~1.5 deg while speaking; Busso et al. 2007 report similar ranges), scaled by
  controls.head_motion and by arousal; an idle head keeps a slight sway.
- Translation is small and follows rotation; scale is controls.head_distance with a
  slight breathing oscillation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.generators.base import Controls
from avatar.generators.prosody import Prosody, impulse_response, strongest
from avatar.generators.signals import raised_cosine, smooth_noise

DEG = np.pi / 180.0
# Random-component std while speaking (deg), at head_motion = 1 and arousal = 0.
NOISE_STD_DEG = {"yaw": 5.5, "pitch": 3.0, "roll": 1.7}
NOISE_TAU_S = (0.6, 2.5)  # correlation times of the fast and slow components (s)
NOISE_SLOW_SHARE = 0.6  # variance share of the slow component
IDLE_LEVEL = 0.45  # random-motion amplitude when not speaking, relative to speaking
ROLL_FROM_YAW = 0.15  # roll (rad) per rad of yaw
PITCH_PER_Z_DEG = 1.3  # head pitch (deg) per robust std of log-F0
NOD_DEG = 2.2  # chin-down nod on the strongest emphasis (deg)
NOD_DURATION_S = 0.5  # a nod goes down and back up in this time (s)
NOD_LEAD_S = 0.1  # the nod starts this long before the stressed onset (s)
NOD_MIN_STRENGTH = 0.5  # only emphases at least this strong (0-1) nod ...
NOD_MIN_GAP_S = 1.0  # ... and at most one nod per this interval (s)
AROUSAL_GAIN = 0.35  # amplitude multiplier 1 + AROUSAL_GAIN * arousal
VALENCE_PITCH_DEG = 1.5  # mean head pitch per unit valence (sad: head lower)
TRANSLATION_PER_RAD = (0.25, -0.2)  # face-width shift per rad of (yaw, pitch)
TRANSLATION_NOISE = 0.004  # extra smooth drift of the head position (face widths)
BREATH_PERIOD_S = 4.0  # one breath (s)
BREATH_SCALE = 0.002  # relative head-size change over a breath
BREATH_SHIFT = 0.002  # vertical shift over a breath (face widths)


@dataclass
class HeadPose:
    rotation: np.ndarray  # (T, 3) yaw, pitch, roll, radians
    translation: np.ndarray  # (T, 2) face widths
    scale: np.ndarray  # (T,)


def _noise(rng: np.random.Generator, num: int, fps: float) -> np.ndarray:
    """(T,) unit-variance smooth noise: a fast and a slow OU component."""
    fast = smooth_noise(rng, num, fps, NOISE_TAU_S[0])
    slow = smooth_noise(rng, num, fps, NOISE_TAU_S[1])
    return np.sqrt(1.0 - NOISE_SLOW_SHARE) * fast + np.sqrt(NOISE_SLOW_SHARE) * slow


def nods(prosody: Prosody, fps: float) -> np.ndarray:
    """(T,) head pitch (rad) of chin-down nods on emphasised onsets."""
    n = max(2, round(NOD_DURATION_S * fps))
    kernel = raised_cosine(np.linspace(-1.0, 1.0, n))  # (n,) down and back up
    frames, strength = strongest(prosody, NOD_MIN_STRENGTH, NOD_MIN_GAP_S, fps)
    return -NOD_DEG * DEG * impulse_response(len(prosody.activity), frames, strength, kernel,
                                             lead=round(NOD_LEAD_S * fps))


def rotation(prosody: Prosody, controls: Controls, fps: float,
             rng: np.random.Generator) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in radians."""
    T = len(prosody.activity)
    envelope = IDLE_LEVEL + (1.0 - IDLE_LEVEL) * prosody.activity  # (T,)
    gain = controls.head_motion * max(0.0, 1.0 + AROUSAL_GAIN * controls.arousal)
    yaw = NOISE_STD_DEG["yaw"] * DEG * envelope * _noise(rng, T, fps)
    pitch = NOISE_STD_DEG["pitch"] * DEG * envelope * _noise(rng, T, fps)
    roll = NOISE_STD_DEG["roll"] * DEG * envelope * _noise(rng, T, fps) + ROLL_FROM_YAW * yaw
    pitch = (pitch + PITCH_PER_Z_DEG * DEG * prosody.pitch_z * prosody.activity
             + nods(prosody, fps) + VALENCE_PITCH_DEG * DEG * controls.valence)
    return gain * np.stack([yaw, pitch, roll], axis=1)


def head_pose(prosody: Prosody, controls: Controls, fps: float,
              rng: np.random.Generator) -> HeadPose:
    """Rotation, translation and scale of the head for every frame."""
    T = len(prosody.activity)
    rot = rotation(prosody, controls, fps, rng)  # (T, 3)
    t = np.arange(T) / fps
    breath = np.sin(2.0 * np.pi * t / BREATH_PERIOD_S + rng.uniform(0.0, 2.0 * np.pi))
    amount = controls.head_motion
    tx = TRANSLATION_PER_RAD[0] * rot[:, 0] + amount * TRANSLATION_NOISE * _noise(rng, T, fps)
    ty = (TRANSLATION_PER_RAD[1] * rot[:, 1] + amount * TRANSLATION_NOISE * _noise(rng, T, fps)
          + amount * BREATH_SHIFT * breath)
    scale = controls.head_distance * (1.0 + amount * BREATH_SCALE * breath)
    return HeadPose(rotation=rot, translation=np.stack([tx, ty], axis=1), scale=scale)
