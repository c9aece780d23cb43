"""Engine-wide defaults. fps, sample rates and sizes live here, never as literals in code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 16000  # analysis rate for features, VAD and alignment
    n_mels: int = 40  # log-mel bands per video frame


@dataclass(frozen=True)
class VideoConfig:
    fps: float = 25.0
    crf: int = 20  # H.264 quality (lower is better)
    audio_bitrate: int = 128_000
    audio_sample_rate: int = 44100  # AAC output rate


@dataclass(frozen=True)
class RenderConfig:
    grid_step: int = 4  # px between nodes of the warp field at 512 px of face-box scale
    max_size: int | None = None  # longest output side; None keeps the photo's resolution


AUDIO = AudioConfig()
VIDEO = VideoConfig()
RENDER = RenderConfig()
