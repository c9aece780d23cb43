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

_SUPPORTED_HINT = "use a wav, mp3, flac, ogg, opus or m4a file (or a video with an audio track)"


def load_audio(path, sample_rate: int = AUDIO.sample_rate) -> Audio:
    """Decode the first audio stream of ``path`` to mono float32 at ``sample_rate``.

    Stereo and multi-channel audio is downmixed; resampling and downmixing run inside
    PyAV's resampler (libswresample) frame by frame, so long files stay cheap in memory.
    Raises :class:`AvatarError` for a missing, unreadable, audio-less or empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise AvatarError("audio file not found", where=str(path), hint="check the path")
    try:
        with av.open(str(path)) as container:
            samples = _decode_first_audio_stream(container, path, sample_rate)
    except av.error.FFmpegError as error:
        raise AvatarError(
            f"cannot decode the audio ({error.strerror or type(error).__name__})",
            where=str(path),
            hint=_SUPPORTED_HINT,
        ) from error
    if samples.size == 0:
        raise AvatarError("the audio is empty (zero length)", where=str(path), hint=_SUPPORTED_HINT)
    return Audio(samples=samples, sample_rate=sample_rate)


def _decode_first_audio_stream(container, path: Path, sample_rate: int) -> np.ndarray:
    """Decode and resample every frame of the container's first audio stream; (N,) float32."""
    if not container.streams.audio:
        raise AvatarError("the file has no audio stream", where=str(path), hint=_SUPPORTED_HINT)
    stream = container.streams.audio[0]
    # Keep the channel layout (None): libswresample's own downmix adds channels at -3 dB,
    # which can clip; averaging the channels ourselves cannot.
    resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate)
    chunks: list[np.ndarray] = []
    for frame in container.decode(stream):
        frame.pts = None  # let the resampler ignore gaps/jitter in the source timestamps
        chunks.extend(_frames_to_arrays(resampler.resample(frame)))
    chunks.extend(_frames_to_arrays(resampler.resample(None)))  # flush buffered samples
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _frames_to_arrays(frames) -> list[np.ndarray]:
    """Planar float frames (channels, n) -> list of mono (n,) float32 arrays (channel mean)."""
    return [frame.to_ndarray().mean(axis=0, dtype=np.float32) for frame in frames]


def resample(audio: Audio, sample_rate: int) -> Audio:
    """Return ``audio`` at ``sample_rate`` (the same object if the rate already matches)."""
    if audio.sample_rate == sample_rate:
        return audio
    # soxr directly: librosa.resample is the same code but costs ~2 s of lazy imports.
    samples = soxr.resample(audio.samples, audio.sample_rate, sample_rate, quality="HQ")
    return Audio(samples=samples.astype(np.float32, copy=False), sample_rate=sample_rate)


def save_wav(audio: Audio, path) -> None:
    """Write ``audio`` as a 16-bit PCM wav file (for tests and debugging)."""
    soundfile.write(str(path), np.clip(audio.samples, -1.0, 1.0), audio.sample_rate, subtype="PCM_16")
