"""Video out / in: codecs, sizes, frame count, picture quality, A/V sync, atomic writes."""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import av
import numpy as np
import pytest

from avatar.audio.types import Audio
from avatar.errors import AvatarError
from avatar.video import VideoWriter, iter_frames, probe, read_audio_track

FPS = 25.0
WIDTH, HEIGHT = 96, 64
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.3
INPUT_RATE = 22050  # deliberately not the AAC output rate: exercises resampling
ANALYSIS_RATE = 16000
AUDIO_SECONDS = 1.97  # not a whole number of frames: the writer pads the last frame
MIN_PSNR_DB = 30.0
FLASH_FRAME = 37
CLICK_SECONDS = 0.01
DARK, WHITE = 20, 255
# A/V offset allowed between click and flash: far inside one frame, yet it would catch
# an uncompensated AAC encoder delay (1024 samples = 23 ms).
SYNC_TOLERANCE_S = 0.005


def num_frames_for(audio: Audio, fps: float) -> int:
    """Frame count the pipeline uses for a soundtrack: ceil(duration * fps)."""
    return math.ceil(audio.duration * fps)


def tone(seconds: float, rate: int = INPUT_RATE, hz: float = TONE_HZ) -> Audio:
    """A sine tone as mono float32 Audio."""
    t = np.arange(round(seconds * rate)) / rate
    return Audio((TONE_AMPLITUDE * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate)


def pattern(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """(height, width, 3) uint8 smooth colour pattern that drifts with ``index``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = index * 0.2
    red = 127 + 100 * np.sin(x / 16 + phase)
    green = 127 + 100 * np.cos(y / 14 - phase)
    blue = 127 + 100 * np.sin((x + y) / 24 + 2 * phase)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def write_pattern_video(path: Path, audio: Audio | None, num_frames: int,
                        width: int = WIDTH, height: int = HEIGHT, fps: float = FPS) -> None:
    """Write ``num_frames`` frames of :func:`pattern` with ``audio``."""
    with VideoWriter(path, width, height, fps=fps, audio=audio) as writer:
        for i in range(num_frames):
            writer.write(pattern(i, width, height))


@pytest.fixture(scope="module")
def tone_video(tmp_path_factory) -> tuple[Path, Audio, int]:
    """A short pattern video with a sine tone: (path, audio, number of frames)."""
    path = tmp_path_factory.mktemp("video") / "tone.mp4"
    audio = tone(AUDIO_SECONDS)
    num_frames = num_frames_for(audio, FPS)
    write_pattern_video(path, audio, num_frames)
    return path, audio, num_frames


# -- format ------------------------------------------------------------------------


def test_probe_reports_codecs_size_frames_and_duration(tone_video):
    path, audio, num_frames = tone_video
    info = probe(path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.fps == pytest.approx(FPS)
    assert info.num_frames == num_frames
    assert info.has_audio and info.audio_sample_rate == 44100
    assert abs(info.duration - audio.duration) <= 1 / FPS


def test_moov_index_is_before_media_data_for_browsers(tone_video):
    """+faststart: a browser can start playing before the whole file is downloaded."""
    data = tone_video[0].read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        boxes.append(kind)
        offset += size
    assert boxes.index(b"moov") < boxes.index(b"mdat")


def test_stream_is_h264_high_profile_yuv420p(tone_video):
    with av.open(str(tone_video[0])) as container:
        video = container.streams.video[0].codec_context
        assert video.profile == "High"
        assert video.pix_fmt == "yuv420p"


# -- picture and sound -------------------------------------------------------------


def test_frames_decode_close_to_what_was_written(tone_video):
    path, _, num_frames = tone_video
    frames = list(iter_frames(path))
    assert len(frames) == num_frames
    assert frames[0].shape == (HEIGHT, WIDTH, 3) and frames[0].dtype == np.uint8
    worst = min(psnr(frame, pattern(i)) for i, frame in enumerate(frames))
    assert worst > MIN_PSNR_DB


def test_audio_keeps_pitch_and_is_padded_to_video_length(tone_video):
    path, audio, num_frames = tone_video
    decoded = read_audio_track(path, ANALYSIS_RATE)
    assert decoded.sample_rate == ANALYSIS_RATE and decoded.samples.dtype == np.float32
    assert decoded.duration == pytest.approx(num_frames / FPS, abs=1 / FPS)
    spectrum = np.abs(np.fft.rfft(decoded.samples))
    peak_hz = np.argmax(spectrum) * ANALYSIS_RATE / len(decoded.samples)
    assert peak_hz == pytest.approx(TONE_HZ, abs=2.0)
    padding = decoded.samples[round((audio.duration + 1 / FPS / 2) * ANALYSIS_RATE):]
    assert np.abs(padding).max() < 0.01  # silence after the end of the input audio


def click_track(seconds: float, click_at: float, rate: int = INPUT_RATE) -> Audio:
    """Silence with a short loud burst starting at ``click_at`` seconds."""
    samples = np.zeros(round(seconds * rate), dtype=np.float32)
    start = round(click_at * rate)
    burst = np.arange(round(CLICK_SECONDS * rate))
    samples[start:start + len(burst)] = 0.8 * np.sin(2 * np.pi * 1000 * burst / rate)
    return Audio(samples, rate)


def flash_time(path: Path) -> float:
    """Presentation time (s) of the brightest frame."""
    with av.open(str(path)) as container:
        frames = [(f.to_ndarray(format="rgb24").mean(), f.time) for f in container.decode(video=0)]
    return max(frames)[1]


def click_time(audio: Audio) -> float:
    """Time (s) at which the audio first gets loud."""
    loud = np.abs(audio.samples) > 0.5 * np.abs(audio.samples).max()
    return int(np.argmax(loud)) / audio.sample_rate


@pytest.mark.parametrize("fps", [25.0, 29.97])
def test_click_and_flash_land_on_the_same_frame(tmp_path, fps):
    flash_at = FLASH_FRAME / fps
    audio = click_track(AUDIO_SECONDS, flash_at)
    path = tmp_path / "sync.mp4"
    with VideoWriter(path, WIDTH, HEIGHT, fps=fps, audio=audio) as writer:
        for i in range(num_frames_for(audio, fps)):
            level = WHITE if i == FLASH_FRAME else DARK
            writer.write(np.full((HEIGHT, WIDTH, 3), level, dtype=np.uint8))
    assert probe(path).fps == pytest.approx(fps, abs=0.01)
    seen = flash_time(path)
    heard = click_time(read_audio_track(path, ANALYSIS_RATE))
    assert seen == pytest.approx(flash_at, abs=0.5 / fps)
    assert heard == pytest.approx(seen, abs=SYNC_TOLERANCE_S)


def test_audio_longer_than_the_video_is_trimmed(tmp_path):
    path = tmp_path / "short.mp4"
    write_pattern_video(path, tone(AUDIO_SECONDS), num_frames=10)
    assert read_audio_track(path).duration == pytest.approx(10 / FPS, abs=1 / FPS)


def test_video_without_audio(tmp_path):
    path = tmp_path / "silent.mp4"
    write_pattern_video(path, None, num_frames=5)
    info = probe(path)
    assert not info.has_audio and info.audio_codec is None and info.num_frames == 5
    with pytest.raises(AvatarError, match="no audio"):
        read_audio_track(path)


def test_odd_size_is_padded_by_one_replicated_pixel(tmp_path):
    width, height = WIDTH + 1, HEIGHT + 1
    path = tmp_path / "odd.mp4"
    write_pattern_video(path, tone(0.2), num_frames=5, width=width, height=height)
    info = probe(path)
    assert (info.width, info.height) == (width + 1, height + 1)
    first = next(iter_frames(path))
    written = pattern(0, width, height)
    assert psnr(first[:height, :width], written) > MIN_PSNR_DB
    assert psnr(first[:height, width], written[:, -1]) > MIN_PSNR_DB  # replicated column


# -- atomic output -----------------------------------------------------------------


def fail_while_writing(path: Path, error: BaseException) -> None:
    """Write a few frames, then raise ``error`` inside the ``with`` block."""
    with VideoWriter(path, WIDTH, HEIGHT, audio=tone(AUDIO_SECONDS)) as writer:
        for i in range(5):
            writer.write(pattern(i))
        raise error


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_error_inside_with_leaves_no_file(tmp_path, error):
    path = tmp_path / "out.mp4"
    with pytest.raises(type(error)):
        fail_while_writing(path, error)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_error_inside_with_keeps_existing_destination(tmp_path, error):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous video")
    with pytest.raises(type(error)):
        fail_while_writing(path, error)
    assert list(tmp_path.iterdir()) == [path]
    assert path.read_bytes() == b"previous video"


def test_success_replaces_destination_and_leaves_no_partial(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous video")
    write_pattern_video(path, tone(0.2), num_frames=5)
    assert list(tmp_path.iterdir()) == [path]
    assert probe(path).num_frames == 5


def test_wrong_frame_shape_is_rejected_and_leaves_no_file(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="frame must be"):
        with VideoWriter(path, WIDTH, HEIGHT) as writer:
            writer.write(np.zeros((HEIGHT, WIDTH + 2, 3), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


# -- user errors -------------------------------------------------------------------


def test_missing_output_folder_is_an_avatar_error(tmp_path):
    with pytest.raises(AvatarError, match="does not exist") as caught:
        VideoWriter(tmp_path / "nope" / "out.mp4", WIDTH, HEIGHT).open()
    assert caught.value.hint


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write to read-only folders")
def test_read_only_folder_is_an_avatar_error(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(AvatarError, match="permission"):
            VideoWriter(tmp_path / "out.mp4", WIDTH, HEIGHT).open()
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.parametrize("fps", [0, -5, float("nan")])
def test_bad_fps_is_an_avatar_error(tmp_path, fps):
    with pytest.raises(AvatarError, match="--fps"):
        VideoWriter(tmp_path / "out.mp4", WIDTH, HEIGHT, fps=fps)


def test_reading_a_missing_or_broken_file_is_an_avatar_error(tmp_path):
    with pytest.raises(AvatarError, match="not found"):
        probe(tmp_path / "missing.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    for read in (probe, lambda p: next(iter_frames(p)), read_audio_track):
        with pytest.raises(AvatarError, match="broken.mp4"):
            read(broken)


def test_display_rotation_is_applied(tmp_path):
    """A phone video stored sideways with a display rotation reads upright, like players show it."""
    path = tmp_path / "rotated.mp4"
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:8, :8] = 255  # a white block at the stored frame's top-left
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # show it turned 90 degrees counterclockwise
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe(path)
    assert (info.width, info.height) == (32, 64)
    frame = next(iter_frames(path))
    assert frame.shape == (64, 32, 3)
    assert frame[-8:, :8].mean() > 200 and frame[:8, :8].mean() < 50  # top-left -> bottom-left


def test_frame_store_gives_random_access_to_frames(tmp_path):
    from avatar.gesture.frames import FrameStore, frame_store_writer

    path = tmp_path / "frames.mp4"
    with frame_store_writer(path, WIDTH, HEIGHT, 25) as writer:
        for i in range(60):
            writer.write(pattern(i))
    with FrameStore(path) as store:
        assert len(store) == 60
        for i in [0, 1, 2, 40, 41, 7, 59, 3, 30]:  # forward runs, jumps back and ahead
            assert psnr(store[i], pattern(i)) > 30, i
