"""Decoding audio files (any container/codec PyAV knows) into mono float32 :class:`Audio`."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile
import soxr  # librosa's resampler; installed with librosa

from avatar.audio.types import Audio
from avatar.config import AUDIO
from avatar.errors import AvatarError

MAX_PREALLOCATED_SECONDS = 4 * 3600
# Lowest sample rate of a readable file (telephone audio is 8 kHz). A damaged header may
# say 1 Hz: a 3 kB file would then be half an hour of audio, GBs once resampled.
MIN_SAMPLE_RATE = 1000
PCM16_MAX = 32767  # float 1.0 as 16-bit PCM
_SUPPORTED_HINT = "use a wav, mp3, flac, ogg, opus or m4a file (or a video with an audio track)"


def load_audio(path, sample_rate: int = AUDIO.sample_rate) -> Audio:
    """Decode the first audio stream of ``path`` to mono float32 at ``sample_rate``.

    Stereo and multi-channel audio is downmixed; resampling and downmixing run inside
    PyAV's resampler (libswresample) frame by frame, so long files stay cheap in memory.
    Raises :class:`AvatarError` for a missing, unreadable, audio-less or empty file.
    """
    path = Path(path)
    if path.is_dir():
        raise AvatarError("is a folder, not an audio file", where=str(path), hint=_SUPPORTED_HINT)
    if not path.is_file():
        raise AvatarError("audio file not found", where=str(path), hint="check the path")
    if path.stat().st_size == 0:
        raise AvatarError("the file is empty", where=str(path), hint=_SUPPORTED_HINT)
    try:
        # a tag that is not UTF-8 must not make the audio unreadable (PyAV's default: an error)
        with av.open(str(path), metadata_errors="replace") as container:
            samples = _decode_first_audio_stream(container, path, sample_rate)
    except av.error.FFmpegError as error:
        raise AvatarError(
            f"cannot decode the audio ({error.strerror or type(error).__name__})",
            where=str(path),
            hint=_SUPPORTED_HINT,
        ) from error
    if samples.size == 0:
        raise AvatarError("the audio is empty (zero length)", where=str(path), hint=_SUPPORTED_HINT)
    # A float64 sum is finite exactly when every sample is (no overflow from float32
    # values), and needs no (N,) temporary as np.isfinite(samples).all() would.
    if not np.isfinite(np.sum(samples, dtype=np.float64)):
        raise AvatarError("the audio has invalid samples (NaN or infinite values)", where=str(path),
                          hint="export it again, e.g. as a 16-bit PCM wav")
    return Audio(samples=samples, sample_rate=sample_rate)


def _decode_first_audio_stream(container, path: Path, sample_rate: int) -> np.ndarray:
    """Decode and resample every frame of the container's first audio stream; (N,) float32."""
    if not container.streams.audio:
        raise AvatarError("the file has no audio stream", where=str(path), hint=_SUPPORTED_HINT)
    stream = container.streams.audio[0]
    if stream.codec_context is None:  # FFmpeg has no decoder for its codec
        raise AvatarError("the audio is in a codec this program cannot decode", where=str(path),
                          hint=_SUPPORTED_HINT)
    # Keep the channel layout (None): libswresample's own downmix adds channels at -3 dB,
    # which can clip; averaging the channels ourselves cannot.
    resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate)
    samples = _Samples(_expected_samples(container, stream, sample_rate))
    for frame in container.decode(stream):
        check_sample_rate(frame.sample_rate, path)
        frame.pts = None  # let the resampler ignore gaps/jitter in the source timestamps
        samples.extend(resampler.resample(frame))
    samples.extend(resampler.resample(None))  # flush buffered samples
    return samples.array()


def check_sample_rate(rate: int, path) -> None:
    """AvatarError for a sample rate no real recording has (a damaged header)."""
    if rate < MIN_SAMPLE_RATE:
        raise AvatarError(f"the audio has an impossible sample rate ({rate} Hz)", where=str(path),
                          hint="the file is damaged; export it again, e.g. as a 16-bit PCM wav")


def _expected_samples(container, stream, sample_rate: int) -> int:
    """Samples at ``sample_rate`` the header announces (0 if it does not say)."""
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    else:
        seconds = (container.duration or 0) / av.time_base
    # A damaged header may announce days: beyond a few hours the buffer grows as it fills.
    return max(0, int(min(seconds, MAX_PREALLOCATED_SECONDS) * sample_rate))


class _Samples:
    """A mono float32 buffer filled frame by frame, allocated once from the announced
    length: collecting frames and concatenating them would hold the track twice (an hour
    at 44.1 kHz is 0.6 GB)."""

    SLACK = 1.01  # headers round; a little room avoids a regrowth at the very end

    def __init__(self, expected: int):
        self._buffer = np.empty(int(expected * self.SLACK) + 1, np.float32)
        self._size = 0

    def extend(self, frames) -> None:
        """Append planar float frames (channels, n) as their channel mean."""
        for frame in frames:
            planes = frame.to_ndarray()  # (channels, n)
            end = self._size + planes.shape[1]
            if end > len(self._buffer):  # the header said less: grow geometrically
                self._buffer = np.resize(self._buffer, max(end, 2 * len(self._buffer)))
            planes.mean(axis=0, dtype=np.float32, out=self._buffer[self._size:end])
            self._size = end

    def array(self) -> np.ndarray:
        """The samples; copied only when much of the buffer went unused."""
        if self._size < 0.9 * len(self._buffer):
            return self._buffer[: self._size].copy()
        return self._buffer[: self._size]


def resample(audio: Audio, sample_rate: int) -> Audio:
    """Return ``audio`` at ``sample_rate`` (the same object if the rate already matches)."""
    if audio.sample_rate == sample_rate:
        return audio
    # soxr directly: librosa.resample is the same code but costs ~2 s of lazy imports.
    samples = soxr.resample(audio.samples, audio.sample_rate, sample_rate, quality="HQ")
    return Audio(samples=samples.astype(np.float32, copy=False), sample_rate=sample_rate)


def to_pcm16(samples: np.ndarray) -> bytes:
    """(N,) float samples in [-1, 1] -> 16-bit little-endian PCM bytes (clipped)."""
    return (np.clip(samples, -1.0, 1.0) * PCM16_MAX).astype("<i2").tobytes()


def save_wav(audio: Audio, path) -> None:
    """Write ``audio`` as a 16-bit PCM wav file (for tests and debugging)."""
    soundfile.write(str(path), np.clip(audio.samples, -1.0, 1.0), audio.sample_rate, subtype="PCM_16")
