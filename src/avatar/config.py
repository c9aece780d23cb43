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
    # Warp-field grids, in cells per face width: fine over the face, coarse around it.
    fine_cells_per_face: int = 64
    coarse_cells_per_face: int = 10


AUDIO = AudioConfig()
VIDEO = VideoConfig()
RENDER = RenderConfig()
