"""What an evaluation measures on and what it returns: held-out segments, per-motion
samples and the whole :class:`Evaluation` (read by the report and the plots)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatar.audio.types import Audio, AudioFeatures, Phone, Speech
from avatar.face.model import FaceModel
from avatar.motion.types import MotionSeq

SPEECH_SAMPLE_RATE = 16000  # of the silent stand-in audio (generators use the features)


@dataclass
class Segment:
    """One held-out time range of one clip, with its ground truth."""

    clip: str
    start: int  # [start, end) frames of the clip
    end: int
    motion: MotionSeq  # ground truth fitted to the real video
    features: AudioFeatures
    phones: list[Phone]
    face: FaceModel  # the clip's reference face, to render motion into landmarks

    @property
    def num_frames(self) -> int:
        return self.end - self.start

    @property
    def label(self) -> str:
        return f"{self.clip}[{self.start}:{self.end}]"

    def speech(self) -> Speech:
        """Speech for a generator: the clip's phones and silent audio of the right length.

        The evaluation datasets store audio features, not samples; the engine's generators
        read the features (and phones), not ``speech.audio``.
        """
        samples = np.zeros(int(round(self.num_frames / self.motion.fps * SPEECH_SAMPLE_RATE)), np.float32)
        return Speech(Audio(samples, SPEECH_SAMPLE_RATE), phones=list(self.phones),
                      phones_source="phone-recognition")


@dataclass
class Sample:
    """The metrics of one motion (ground truth or one seed of one generator) on one segment."""

    method: str
    segment: Segment
    seed: int | None  # None for the ground truth
    motion: MotionSeq
    values: dict[str, float]


@dataclass
class Evaluation:
    """What :func:`evaluate` measured and where it wrote it."""

    table: dict[str, dict[str, float]]  # method (and GROUND_TRUTH) -> metric -> value
    samples: list[Sample]
    capp_shift: dict[int, float]  # held-out ground truth, shift in frames -> CAPP score
    capp_checkpoint: str
    files: list[Path] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
