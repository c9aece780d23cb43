"""The generator contract and the user controls every generator accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from avatar.audio.types import AudioFeatures, Speech
from avatar.errors import AvatarError
from avatar.motion.types import MotionSeq

# Named emotions as (valence, arousal) points of the circumplex model; both in [-1, 1].
EMOTIONS: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.5),
    "excited": (0.7, 0.9),
    "calm": (0.4, -0.5),
    "sad": (-0.7, -0.4),
    "angry": (-0.6, 0.8),
    "surprised": (0.3, 0.9),
    "tired": (-0.2, -0.8),
}


@dataclass(frozen=True)
class Controls:
    """What a user can steer besides the speech itself."""

    valence: float = 0.0  # -1 (negative) .. 1 (positive)
    arousal: float = 0.0  # -1 (calm, low energy) .. 1 (excited)
    head_motion: float = 1.0  # head-motion amplitude multiplier (0 = still head)
    gaze: tuple[float, float] = (0.0, 0.0)  # main gaze direction (x, y) radians; 0 = camera
    head_distance: float = 1.0  # head scale; > 1 closer to the camera

    @classmethod
    def from_emotion(cls, name: str, **kw) -> "Controls":
        try:
            v, a = EMOTIONS[name]
        except KeyError:
            raise AvatarError(f"unknown emotion {name!r}", "--emotion",
                              f"use one of: {', '.join(EMOTIONS)}, or --valence/--arousal") from None
        return cls(valence=v, arousal=a, **kw)


class MotionGenerator(Protocol):
    name: str

    def generate(self, speech: Speech, features: AudioFeatures, controls: Controls,
                 seed: int = 0) -> MotionSeq:
        """Motion for ``features.num_frames`` frames at ``features.fps``."""
        ...
