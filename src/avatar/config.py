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


@dataclass(frozen=True)
class LiveConfig:
    """avatar serve / avatar.live: streaming sessions."""

    audio_rate: int = 24000  # PCM rate of the audio streamed back (an integer per frame at 25 fps)
    ramp_seconds: float = 0.24  # a change of motion source (idle <-> speech) eases over this
    idle_block_seconds: float = 8.0  # idle motion is generated this far ahead
    stream_context_seconds: float = 1.0  # audio before the newest frame seen by the streamed mouth
    stream_lookahead_frames: int = 1  # frames of audio after a frame before its mouth is decided
    max_upload_bytes: int = 10_000_000
    max_image_side: int = 4096  # photos larger than this are refused (they are resized to frame_size)
    frame_size: int = 512  # longest side of the streamed video
    jpeg_quality: int = 85
    max_sessions: int = 4  # open sessions; more are refused with "server busy"
    idle_timeout_seconds: float = 300.0  # a session with no input for this long is closed
    connect_timeout_seconds: float = 30.0  # an opened session no client streams by then is closed
    max_text_chars: int = 5000  # per text message
    max_utterance_seconds: float = 120.0  # speech kept per utterance (for the mp4 download)
    max_queued_seconds: float = 60.0  # speech waiting to be played, per session
    max_message_bytes: int = 1_000_000  # one WebSocket message (200 ms of 96 kHz PCM is 38 kB)
    max_memory_mb: int = 6000  # new sessions are refused while the server's resident memory is above this
    host: str = "127.0.0.1"  # avatar serve binds here: local only unless asked
    port: int = 8000


AUDIO = AudioConfig()
VIDEO = VideoConfig()
RENDER = RenderConfig()
GESTURE = GestureConfig()
LIVE = LiveConfig()
