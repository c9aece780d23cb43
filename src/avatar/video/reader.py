"""Reading videos back: stream facts, RGB frames one at a time, and the soundtrack.

Used by the tests, by benchmarks that run a face tracker over the engine's output, and
by video enrollment. Any file PyAV (FFmpeg) can demux works, not only our own mp4s.
Every failure to open or decode a file is raised as an :class:`AvatarError` naming it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avatar.audio.types import Audio
from avatar.errors import AvatarError

MONO_LAYOUT = "mono"
FLOAT_FORMAT = "flt"  # packed float32
RGB_FORMAT = "rgb24"
UNREADABLE_HINT = "check that it is a video file (mp4, mov, mkv, webm, ...) and not damaged"


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` finds in a video file (first video / audio stream)."""

    width: int
    height: int
    fps: float  # average frame rate
    num_frames: int
    duration: float  # seconds of video
    has_audio: bool
    audio_sample_rate: int | None  # None without an audio stream
    video_codec: str  # FFmpeg codec name, e.g. "h264"
    audio_codec: str | None  # e.g. "aac"; None without an audio stream


@contextlib.contextmanager
def _open(path: str | os.PathLike) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for reading; map "missing" / "not a video" / decode errors to AvatarError."""
    path = Path(path)
    if not path.is_file():
        raise AvatarError("file not found", str(path), "check the path")
    try:
        # a tag that is not UTF-8 must not make the video unreadable (PyAV's default: an error)
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except (av.error.FFmpegError, OSError) as err:
        raise AvatarError("cannot open the file as a video", str(path), UNREADABLE_HINT) from err
    try:
        with container:
            yield container
    except av.error.FFmpegError as err:
        raise AvatarError(f"the file is damaged ({err})", str(path), UNREADABLE_HINT) from err


def _video_stream(container: av.container.InputContainer, path: str | os.PathLike):
    """The first video stream, or AvatarError if there is none."""
    if not container.streams.video:
        raise AvatarError("the file has no video stream", str(path), UNREADABLE_HINT)
    return _decodable(container.streams.video[0], "video", path)


def _decodable(stream, kind: str, path: str | os.PathLike):
    """``stream``, or AvatarError if FFmpeg has no decoder for its codec (no codec context)."""
    if stream.codec_context is None:
        raise AvatarError(f"the {kind} stream is in a codec this program cannot decode", str(path),
                          UNREADABLE_HINT)
    return stream


def _audio_stream(container: av.container.InputContainer):
    """The first audio stream, or None."""
    return container.streams.audio[0] if container.streams.audio else None


def _stream_seconds(stream) -> float | None:
    """Length of a stream in seconds from its header, or None if it is not recorded."""
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _count_video_packets(container: av.container.InputContainer, stream) -> int:
    """Number of frames by demuxing (no decoding), for files whose header lacks it."""
    return sum(1 for packet in container.demux(stream) if packet.size > 0)


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counterclockwise quarter turns that show the frame upright (phones store portrait
    videos sideways with a display rotation; FFmpeg's players apply it, so do we)."""
    return round((frame.rotation or 0) / 90) % 4


def _upright(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame, display rotation applied."""
    rgb = frame.to_ndarray(format=RGB_FORMAT)
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _first_frame_turns(container: av.container.InputContainer, stream) -> int:
    for frame in container.decode(stream):
        return _quarter_turns(frame)
    return 0


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size (as displayed: rotation applied), frame rate, frame count, duration and codecs."""
    with _open(path) as container:
        video = _video_stream(container, path)
        audio = _audio_stream(container)
        if audio is not None and audio.codec_context is None:
            audio = None  # undecodable: the video is still usable; read_audio_track says why
        fps = video.average_rate or video.guessed_rate or Fraction(0)
        num_frames = video.frames or _count_video_packets(container, video)
        duration = _stream_seconds(video) or (num_frames / float(fps) if fps else 0.0)
        width, height = video.codec_context.width, video.codec_context.height
        if not video.frames:  # counting packets read the file: rewind before decoding
            container.seek(0)
        if _first_frame_turns(container, video) % 2:
            width, height = height, width
        return VideoInfo(
            width=width,
            height=height,
            fps=float(fps),
            num_frames=num_frames,
            duration=duration,
            has_audio=audio is not None,
            audio_sample_rate=audio.codec_context.sample_rate if audio else None,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio else None,
        )


def check_moving(info: VideoInfo, path: str | os.PathLike) -> None:
    """AvatarError unless the video has at least two frames: FFmpeg opens a photo (JPEG,
    PNG, ...) as a video of one frame, which has no motion to track or dub."""
    if info.num_frames < 2:
        what = "the video has no frames" if info.num_frames < 1 else "is a photo (one frame), not a video"
        raise AvatarError(what, str(path), "give a video of the person talking (for a photo: avatar speak --image)")


def iter_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yield the frames of the first video stream as (H, W, 3) uint8 RGB, one at a time.

    Decoding is streamed (constant memory) and multi-threaded; YUV is converted to RGB
    with the matrix and range the file is tagged with; a display rotation is applied.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield _upright(frame)  # (H, W, 3) uint8


def read_audio_track(path: str | os.PathLike, sample_rate: int | None = None) -> Audio:
    """Decode the first audio stream to mono float32 at ``sample_rate`` (None: as stored).

    The encoder's padding after the last real sample is cut off when the file records
    the track length (mp4 does), so the duration is the one that was written.
    """
    with _open(path) as container:
        stream = _audio_stream(container)
        if stream is None:
            raise AvatarError("the file has no audio track", str(path),
                              "use a video with sound, or give the audio separately")
        _decodable(stream, "audio", path)
        from avatar.audio.io import check_sample_rate  # the audio stack, only when audio is read

        rate = int(sample_rate or stream.codec_context.sample_rate)
        resampler = av.AudioResampler(format=FLOAT_FORMAT, layout=MONO_LAYOUT, rate=rate)
        chunks: list[np.ndarray] = []  # each (n,) float32
        for frame in container.decode(stream):
            check_sample_rate(frame.sample_rate, path)  # a damaged header: GBs once resampled
            chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray()[0] for f in resampler.resample(None))
        seconds = _stream_seconds(stream)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if seconds is not None:
        samples = samples[: round(seconds * rate)]
    return Audio(samples=samples.astype(np.float32, copy=False), sample_rate=rate)
