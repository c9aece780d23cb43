"""Decoding audio files: formats, rates, channels, and user-facing errors."""

from __future__ import annotations

import av
import numpy as np
import pytest

from avatar.audio.io import load_audio, resample, save_wav
from avatar.audio.types import Audio
from avatar.config import AUDIO
from avatar.errors import AvatarError

DURATION = 2.0  # seconds of test tone
AMPLITUDE = 0.5
TONE_HZ = 440.0
CODEC_PADDING = 0.06  # s: AAC/Vorbis priming may add up to ~1024 samples at low rates
VIDEO_FPS = 25
VIDEO_SIZE = 32


def _to_codec_format(block: np.ndarray, fmt: str) -> np.ndarray:
    """(channels, n) float block -> the array layout PyAV expects for sample format ``fmt``."""
    planar = fmt.endswith("p")
    data = block if planar else block.T.reshape(1, -1)
    kind = fmt.rstrip("p")
    if kind == "s16":
        return (data * np.iinfo(np.int16).max).astype(np.int16)
    if kind == "s32":
        return (data * np.iinfo(np.int32).max).astype(np.int32)
    if kind == "flt":
        return data.astype(np.float32)
    if kind == "dbl":
        return data.astype(np.float64)
    raise ValueError(f"unhandled sample format {fmt}")


def write_media(path, samples: np.ndarray | None, rate: int, codec: str, with_video: bool = False) -> None:
    """Encode (channels, n) ``samples`` with PyAV (optionally alongside a tiny video track)."""
    with av.open(str(path), "w") as container:
        audio_stream = None
        if samples is not None:
            layout = "stereo" if samples.shape[0] == 2 else "mono"
            options = {"strict": "experimental"} if codec == "vorbis" else {}
            audio_stream = container.add_stream(codec, rate=rate, layout=layout, options=options)
        if with_video:
            _write_video(container, samples.shape[1] / rate if samples is not None else DURATION)
        if audio_stream is not None:
            _write_audio(container, audio_stream, samples, rate, layout)


def _write_audio(container, stream, samples: np.ndarray, rate: int, layout: str) -> None:
    fmt = stream.codec_context.codec.audio_formats[0].name
    frame_size = stream.codec_context.frame_size or 1024
    for start in range(0, samples.shape[1], frame_size):
        block = _to_codec_format(samples[:, start : start + frame_size], fmt)
        frame = av.AudioFrame.from_ndarray(block, format=fmt, layout=layout)
        frame.sample_rate, frame.pts = rate, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _write_video(container, seconds: float) -> None:
    stream = container.add_stream("mpeg4", rate=VIDEO_FPS)
    stream.width = stream.height = VIDEO_SIZE
    stream.pix_fmt = "yuv420p"
    for index in range(int(seconds * VIDEO_FPS)):
        frame = av.VideoFrame.from_ndarray(np.zeros((VIDEO_SIZE, VIDEO_SIZE, 3), np.uint8), format="rgb24")
        frame.pts = index
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def tone(rate: int, channels: int) -> np.ndarray:
    """(channels, n) sine tone of DURATION seconds at AMPLITUDE."""
    t = np.arange(int(rate * DURATION)) / rate
    return np.repeat((AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t))[None], channels, axis=0)


FORMATS = [
    # codec, extension, sample rate, channels, with a video track
    ("pcm_s16le", "wav", 16000, 1, False),
    ("pcm_s24le", "wav", 44100, 2, False),
    ("pcm_f32le", "wav", 48000, 1, False),
    ("libmp3lame", "mp3", 44100, 2, False),
    ("flac", "flac", 8000, 1, False),
    ("vorbis", "ogg", 22050, 2, False),
    ("libopus", "opus", 48000, 2, False),
    ("aac", "m4a", 22050, 1, False),
    ("aac", "mp4", 44100, 2, True),
    ("flac", "mkv", 32000, 2, True),
    ("pcm_s16le", "mov", 11025, 1, True),
]


@pytest.mark.parametrize("codec,ext,rate,channels,with_video", FORMATS)
def test_formats_decode_to_mono_at_the_requested_rate(tmp_path, codec, ext, rate, channels, with_video):
    path = tmp_path / f"tone_{codec}_{rate}.{ext}"
    write_media(path, tone(rate, channels), rate, codec, with_video)
    audio = load_audio(path)
    assert audio.sample_rate == AUDIO.sample_rate
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert DURATION - 0.01 <= audio.duration <= DURATION + CODEC_PADDING
    peak = float(np.percentile(np.abs(audio.samples), 99.9))
    assert peak == pytest.approx(AMPLITUDE, abs=0.06)  # channels averaged, not summed


def test_other_target_rate(tmp_path):
    path = tmp_path / "tone.wav"
    write_media(path, tone(22050, 1), 22050, "pcm_s16le")
    audio = load_audio(path, sample_rate=44100)
    assert audio.sample_rate == 44100
    assert audio.duration == pytest.approx(DURATION, abs=0.01)


def test_stereo_is_averaged(tmp_path):
    path = tmp_path / "opposite.wav"
    left = tone(16000, 1)
    write_media(path, np.concatenate([left, -left]), 16000, "pcm_s16le")
    assert np.abs(load_audio(path).samples).max() < 1e-3


def test_resample_and_save_roundtrip(tmp_path):
    audio = Audio(tone(48000, 1)[0].astype(np.float32), 48000)
    low = resample(audio, 16000)
    assert low.sample_rate == 16000 and len(low.samples) == pytest.approx(DURATION * 16000, abs=2)
    assert resample(low, 16000) is low
    save_wav(low, tmp_path / "out.wav")
    back = load_audio(tmp_path / "out.wav")
    assert np.allclose(back.samples, low.samples, atol=1e-3)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AvatarError, match="not found") as error:
        load_audio(path)
    assert str(path) in str(error.value)


def test_corrupt_file(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AvatarError) as error:
        load_audio(path)
    assert str(path) in str(error.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    save_wav(Audio(np.zeros(0, np.float32), 16000), path)
    with pytest.raises(AvatarError, match="empty") as error:
        load_audio(path)
    assert str(path) in str(error.value)


def test_video_without_audio(tmp_path):
    path = tmp_path / "silent_film.mkv"
    write_media(path, None, 16000, "", with_video=True)
    with pytest.raises(AvatarError, match="no audio stream") as error:
        load_audio(path)
    assert str(path) in str(error.value)
