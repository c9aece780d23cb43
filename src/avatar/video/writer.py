"""Streaming, atomic H.264 + AAC mp4 writer.

:class:`VideoWriter` takes RGB frames one at a time and encodes them straight into the
file, muxing the matching slice of the soundtrack after every frame, so memory stays
flat however long the video is. The result is made for browsers: H.264 High profile,
yuv420p, colour tags, AAC-LC audio and the ``moov`` index at the front (``+faststart``)
so playback starts before the whole file is downloaded.

Timing contract
    The video is the master clock. The caller decides the number of frames (the
    pipeline uses ``ceil(audio.duration * fps)``); the soundtrack is padded with
    silence, or trimmed, to exactly ``num_frames / fps`` seconds. Both streams start
    at 0, so sample ``s`` of the input audio plays with frame ``floor(s / sr * fps)``.

Odd sizes
    yuv420p stores colour at half resolution, so H.264 needs even width and height.
    An odd dimension is padded by one pixel that repeats the last row / column; the
    file is then one pixel wider and/or taller than requested (never cropped, never
    rejected).

Atomic output
    Everything is written to a hidden ``.<name>.<pid>.partial<suffix>`` next to the
    destination and moved over it with :func:`os.replace` only after the file has been
    finalised. If anything fails, including Ctrl-C (``KeyboardInterrupt``), the
    partial file is deleted and an existing file at the destination is left untouched.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import re
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc

from avatar.audio.types import Audio
from avatar.config import VIDEO
from avatar.errors import AvatarError

CONTAINER_FORMAT = "mp4"
# Moves the moov index before the media data when the file is closed, so a browser
# can start playing (and seeking) before it has downloaded the whole file.
CONTAINER_OPTIONS = {"movflags": "+faststart"}

VIDEO_CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"  # 4:2:0: the only chroma layout every browser decodes
CHROMA_SUBSAMPLING = 2  # yuv420p halves colour resolution: sizes must be multiples of 2
# Colour tags written into the H.264 stream. Frames are converted with OpenCV's
# RGB->I420 (BT.601 matrix, limited range, 2x2 averaged chroma), ~8x faster than
# swscale here, so the matrix is tagged BT.601; primaries and transfer are those of the
# sRGB input, so tag-aware players (all browsers) show the original colours.
AVCOL_SPC_SMPTE170M = 6  # FFmpeg AVColorSpace value of the BT.601 matrix
COLOR_TAGS = {
    "colorspace": AVCOL_SPC_SMPTE170M,
    "color_range": ColorRange.MPEG,  # limited ("TV") range, 16..235
    "color_primaries": ColorPrimaries.BT709,  # sRGB primaries
    "color_trc": ColorTrc.IEC61966_2_1,  # sRGB transfer curve
}
H264_PROFILE = "high"  # supported by every browser and phone of the last decade
# x264 speed/size trade-off, measured on 2 cores with a moving head on a still
# background: "veryfast" writes 512^2 at ~370 fps, 1024^2 at ~90, 1920x1080 at ~55.
# "superfast" is no faster on such content and makes 3x bigger files; "faster" is
# ~1.6x slower for no size gain at CRF 20.
X264_PRESET = "veryfast"
X264_THREADS = "0"  # 0 = let x264 pick from the CPU count
# Largest fps denominator kept: covers NTSC rates such as 30000/1001.
FPS_MAX_DENOMINATOR = 1001

AUDIO_CODEC = "aac"
AUDIO_LAYOUT = "mono"  # the engine's Audio is mono; browsers play mono AAC fine
AUDIO_INPUT_FORMAT = "flt"  # packed float32, what Audio.samples holds

RGB_CHANNELS = 3
PARTIAL_TAG = ".partial"
WRITE_HINT = "check that the output folder is writable and the disk is not full"


def fps_fraction(fps: float) -> Fraction:
    """Exact frame rate as a fraction, e.g. 25 -> 25/1, 29.97 -> 2997/100."""
    if not (math.isfinite(fps) and fps > 0):
        raise AvatarError(f"frame rate must be a positive number, got {fps}", "--fps",
                          f"use e.g. --fps {VIDEO.fps:g}")
    return Fraction(fps).limit_denominator(FPS_MAX_DENOMINATOR)


def encoded_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) rounded up to the even size yuv420p needs."""

    def round_up(n: int) -> int:
        return -(-n // CHROMA_SUBSAMPLING) * CHROMA_SUBSAMPLING

    return round_up(width), round_up(height)


def pad_to_size(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pad an (h, w, 3) frame to (height, width, 3) by repeating its last row / column."""
    pad_rows = height - frame.shape[0]
    pad_cols = width - frame.shape[1]
    if pad_rows == 0 and pad_cols == 0:
        return frame
    return cv2.copyMakeBorder(frame, 0, pad_rows, 0, pad_cols, cv2.BORDER_REPLICATE)


def rgb_to_yuv420p(rgb: np.ndarray) -> av.VideoFrame:
    """(H, W, 3) uint8 RGB, H and W even -> yuv420p frame (BT.601 limited range)."""
    planes = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # (H * 3 / 2, W): Y, then U, then V
    return av.VideoFrame.from_ndarray(planes, format=PIXEL_FORMAT)


def partial_path(path: Path) -> Path:
    """Hidden temporary path next to ``path``: ``dir/.name.<pid>.partial.mp4``.

    Same directory so the final :func:`os.replace` is an atomic rename on one
    filesystem; the pid keeps two processes writing the same output apart.
    """
    return path.with_name(f".{path.stem}.{os.getpid()}{PARTIAL_TAG}{path.suffix}")


def partials_of(path: Path) -> list[Path]:
    """The partial files of ``path`` that writers of any process left (a killed one's)."""
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.\d+{re.escape(PARTIAL_TAG + path.suffix)}")
    return [p for p in path.parent.glob(f".{glob.escape(path.stem)}.*") if pattern.fullmatch(p.name)]


def check_destination(path: Path) -> None:
    """Raise :class:`AvatarError` if ``path`` cannot become a video file."""
    folder = path.parent
    if not folder.is_dir():
        raise AvatarError("the output folder does not exist", str(folder),
                          "create it first or choose another output path")
    if path.is_dir():
        raise AvatarError("the output path is a folder", str(path),
                          "give a file name such as out.mp4")
    if not os.access(folder, os.W_OK):
        raise AvatarError("no permission to write in the output folder", str(folder),
                          "choose a folder you can write to")


class _AudioTrack:
    """AAC stream fed incrementally: after each video frame, the audio up to that time.

    Samples go to the encoder at the input rate; PyAV's encoder-side resampler converts
    them to ``VIDEO.audio_sample_rate`` planar float and cuts the 1024-sample AAC
    frames, keeping timestamps, so no whole-track resampled copy is ever made.
    """

    def __init__(self, container: av.container.OutputContainer, audio: Audio, fps: Fraction):
        if audio.samples.ndim != 1:
            raise ValueError(f"Audio.samples must be mono (N,), got shape {audio.samples.shape}")
        self._container = container
        self._samples = audio.samples  # (N,) float32, at self._rate
        self._rate = int(audio.sample_rate)
        self._fps = fps
        self._sent = 0  # input samples (real or silent) already given to the encoder
        self._stream = container.add_stream(AUDIO_CODEC, rate=VIDEO.audio_sample_rate)
        self._stream.layout = AUDIO_LAYOUT
        self._stream.bit_rate = VIDEO.audio_bitrate

    def _sample_at_frame(self, num_frames: int) -> int:
        """Input-sample index at which video frame ``num_frames`` starts."""
        return round(num_frames * self._rate / self._fps)

    def _chunk(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as (stop - start,) float32, zero-padded past the end."""
        chunk = np.zeros(stop - start, dtype=np.float32)
        available = self._samples[start:stop]
        chunk[: len(available)] = available
        return chunk

    def encode_until(self, num_frames: int) -> None:
        """Encode and mux the audio that plays during the first ``num_frames`` frames."""
        stop = self._sample_at_frame(num_frames)
        if stop <= self._sent:
            return
        chunk = self._chunk(self._sent, stop)
        frame = av.AudioFrame.from_ndarray(chunk[np.newaxis, :], format=AUDIO_INPUT_FORMAT,
                                           layout=AUDIO_LAYOUT)  # (1, n) packed mono
        frame.sample_rate = self._rate
        frame.time_base = Fraction(1, self._rate)
        frame.pts = self._sent
        self._container.mux(self._stream.encode(frame))
        self._sent = stop

    def finish(self, num_frames: int) -> None:
        """Pad / trim to the video length, then drain the encoder."""
        self.encode_until(num_frames)
        self._container.mux(self._stream.encode(None))


class VideoWriter:
    """Write RGB frames (+ optional soundtrack) to a browser-playable mp4, atomically.

    Use as a context manager::

        with VideoWriter("out.mp4", width, height, fps=25, audio=speech.audio) as w:
            for frame in frames:  # each (height, width, 3) uint8 RGB
                w.write(frame)

    The file appears at ``path`` only when the ``with`` block ends without an error.
    See the module docstring for the timing, odd-size and atomicity rules.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int,
                 fps: float = VIDEO.fps, audio: Audio | None = None, crf: int = VIDEO.crf,
                 keyframe_interval: int | None = None):
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        self.path = Path(path)
        self.width = int(width)
        self.height = int(height)
        self.fps = fps_fraction(fps)
        self.audio = audio
        self.crf = int(crf)
        self.keyframe_interval = keyframe_interval  # None: x264's default (long GOPs)
        self.frames_written = 0
        self._encoded_width, self._encoded_height = encoded_size(self.width, self.height)
        self._partial = partial_path(self.path)
        self._container: av.container.OutputContainer | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._audio_track: _AudioTrack | None = None

    # -- context manager -------------------------------------------------------------

    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()  # the original exception (even KeyboardInterrupt) propagates

    # -- public ----------------------------------------------------------------------

    def open(self) -> None:
        """Create the partial file and set up the H.264 and AAC streams."""
        check_destination(self.path)
        try:
            self._container = av.open(str(self._partial), mode="w", format=CONTAINER_FORMAT,
                                      container_options=CONTAINER_OPTIONS)
        except OSError as err:
            raise AvatarError(f"cannot create the video file ({err.strerror or err})",
                              str(self.path), WRITE_HINT) from err
        try:
            self._video = self._add_video_stream()
            if self.audio is not None:
                self._audio_track = _AudioTrack(self._container, self.audio, self.fps)
        except BaseException:
            self.abort()
            raise

    def write(self, frame: np.ndarray) -> None:
        """Encode one (height, width, 3) uint8 RGB frame and the audio under it."""
        if self._container is None:
            raise RuntimeError("VideoWriter is not open: use it as a context manager")
        self._check_frame(frame)
        padded = pad_to_size(frame, self._encoded_width, self._encoded_height)
        video_frame = rgb_to_yuv420p(padded)
        video_frame.time_base = 1 / self.fps
        video_frame.pts = self.frames_written
        with self._disk_errors():
            self._container.mux(self._video.encode(video_frame))
            self.frames_written += 1
            if self._audio_track is not None:
                self._audio_track.encode_until(self.frames_written)

    def close(self) -> None:
        """Flush the encoders, finalise the file and move it to ``path``."""
        if self._container is None:
            return
        try:
            if self.frames_written == 0:
                raise ValueError("VideoWriter closed without any frame written")
            with self._disk_errors():
                self._container.mux(self._video.encode(None))
                if self._audio_track is not None:
                    self._audio_track.finish(self.frames_written)
                self._container.close()  # writes the index; +faststart moves it first
                self._container = None
            self._publish()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop everything written so far: close and delete the partial file."""
        container, self._container = self._container, None
        if container is not None:
            # The file is discarded: an error while closing it does not matter.
            with contextlib.suppress(av.error.FFmpegError, OSError):
                container.close()
        # Best effort: a failure here must not hide the error that caused the abort.
        with contextlib.suppress(OSError):
            self._partial.unlink()

    # -- helpers ---------------------------------------------------------------------

    def _publish(self) -> None:
        """Atomically move the finished partial file over the destination."""
        try:
            os.replace(self._partial, self.path)
        except OSError as err:
            raise AvatarError(f"cannot move the finished video into place ({err.strerror})",
                              str(self.path), WRITE_HINT) from err

    def _add_video_stream(self) -> av.video.stream.VideoStream:
        """H.264 stream: yuv420p, High profile, colour tags, time base 1/fps."""
        stream = self._container.add_stream(VIDEO_CODEC, rate=self.fps)
        stream.width = self._encoded_width
        stream.height = self._encoded_height
        stream.pix_fmt = PIXEL_FORMAT
        stream.codec_context.time_base = 1 / self.fps
        for tag, value in COLOR_TAGS.items():
            setattr(stream.codec_context, tag, value)
        options = {"preset": X264_PRESET, "crf": str(self.crf),
                   "profile": H264_PROFILE, "threads": X264_THREADS}
        if self.keyframe_interval:
            # Fixed short GOPs (no scene-cut keyframes) make seeking to any frame cheap.
            stream.codec_context.gop_size = int(self.keyframe_interval)
            options |= {"keyint_min": str(self.keyframe_interval), "sc_threshold": "0"}
        stream.options = options
        return stream

    def _check_frame(self, frame: np.ndarray) -> None:
        """Reject anything but an (height, width, 3) uint8 array."""
        expected = (self.height, self.width, RGB_CHANNELS)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 {expected}, got {frame.dtype} {frame.shape}")

    @contextlib.contextmanager
    def _disk_errors(self):
        """Turn an OS error while writing (disk full, no permission) into an AvatarError.

        The file itself is only created when the first packet is written, so this also
        covers failures to create it.
        """
        try:
            yield
        except OSError as err:
            raise AvatarError(f"writing the video failed ({err.strerror or err})",
                              str(self.path), WRITE_HINT) from err
