"""Typed objects passed between the speech stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Audio:
    """Mono float32 samples in [-1, 1]."""

    samples: np.ndarray  # (N,) float32
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)


@dataclass(frozen=True)
class Phone:
    """One phone with its time span in seconds.

    ``label`` is an ARPAbet symbol without stress digits, upper case ("M", "AA", "F"),
    or "SIL" for silence / non-speech.
    """

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass
class Speech:
    """Speech ready for motion generation: the audio plus what is said when."""

    audio: Audio
    phones: list[Phone] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    transcript: str | None = None
    # "tts", "forced-alignment", "speech-recognition" (heard words, aligned),
    # "phone-recognition", "speech-recognition+phone-recognition" or "none"
    phones_source: str = "none"


@dataclass
class AudioFeatures:
    """Per-video-frame audio features; every array has T = number of video frames."""

    fps: float
    energy: np.ndarray  # (T,) loudness in [0, 1] (normalised dB RMS)
    pitch: np.ndarray  # (T,) f0 in Hz, 0 where unvoiced
    onset: np.ndarray  # (T,) onset strength in [0, 1]
    vad: np.ndarray  # (T,) probability that the frame is speech, in [0, 1]
    mel: np.ndarray  # (T, n_mels) log-mel, per-utterance normalised

    @property
    def num_frames(self) -> int:
        return len(self.energy)
