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


@dataclass(frozen=True)
class GestureConfig:
    """TANGO (seed 000): gesture video from a person's own footage."""

    node_frames: int = 4  # frames per motion-graph node (§3.1)
    reference_fps: float = 30.0  # the paper's frame rate; frame counts below are at this rate
    local_positive: int = 4  # AuMoCLIP local loss: frames within +-t are positives (§3.2) ...
    local_negative_factor: int = 4  # ... frames in (i - k t, i - t) and (i + t, i + k t) negatives
    window_seconds: float = 4.0  # high-level (CLS) audio/motion clip length (§3.2)
    transition_frames: int = 8  # in-between frames generated where the path jumps (§3.3)
    mask_width: int = 96  # px width of the stored person masks (height keeps the aspect)


AUDIO = AudioConfig()
VIDEO = VideoConfig()
RENDER = RenderConfig()
GESTURE = GestureConfig()
