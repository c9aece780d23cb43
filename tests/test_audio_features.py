"""Voice activity and per-frame audio features."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.stats import spearmanr

from avatar.audio.features import extract_features
from avatar.audio.io import resample
from avatar.audio.tts import synthesize
from avatar.audio.types import Audio
from avatar.audio.vad import silero_available, voice_activity
from avatar.config import AUDIO

RATE = AUDIO.sample_rate
FPS = 25.0
SECONDS = 3.0
SPEECH_TEXT = "Good morning everybody, thank you all for coming here today to listen to me."


@pytest.fixture(scope="module")
def speech_audio() -> Audio:
    return resample(synthesize(SPEECH_TEXT).audio, RATE)


def seconds_of(signal: np.ndarray) -> Audio:
    return Audio(signal.astype(np.float32), RATE)


def time_axis(seconds: float = SECONDS) -> np.ndarray:
    return np.arange(int(seconds * RATE)) / RATE


def chord(seconds: float = SECONDS) -> np.ndarray:
    """C major triad of pure tones."""
    t = time_axis(seconds)
    return sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))


def white_noise(seconds: float = SECONDS) -> np.ndarray:
    return 0.3 * np.random.default_rng(0).standard_normal(int(seconds * RATE))


# --- VAD -----------------------------------------------------------------------------------


def test_silero_is_used():
    assert silero_available()


def test_vad_high_on_speech(speech_audio):
    vad = voice_activity(speech_audio, FPS)
    assert vad.shape == (math.ceil(speech_audio.duration * FPS),)
    assert np.percentile(vad, 75) > 0.9
    assert vad.dtype == np.float32 and vad.min() >= 0.0 and vad.max() <= 1.0


@pytest.mark.parametrize("make", [lambda: np.zeros(int(SECONDS * RATE)), white_noise, chord])
def test_vad_low_on_non_speech(make):
    vad = voice_activity(seconds_of(make()), FPS)
    assert vad.max() < 0.3


def test_energy_fallback_without_silero(monkeypatch, speech_audio):
    import avatar.audio.vad as vad_module

    monkeypatch.setattr(vad_module, "_silero_session", lambda: None)
    pause = np.zeros(RATE)
    vad = voice_activity(seconds_of(np.concatenate([pause, speech_audio.samples, pause])), FPS)
    second = int(FPS)
    assert vad[: second - 2].max() < 0.1
    assert np.median(vad[second + 5 : -second - 5]) > 0.8


def test_vad_length_follows_num_frames(speech_audio):
    assert voice_activity(speech_audio, FPS, num_frames=7).shape == (7,)
    padded = voice_activity(speech_audio, FPS, num_frames=1000)
    assert padded.shape == (1000,) and padded[-10:].max() == 0.0


# --- features ------------------------------------------------------------------------------


def test_feature_shapes_and_ranges(speech_audio):
    features = extract_features(speech_audio, FPS)
    frames = math.ceil(speech_audio.duration * FPS)
    assert features.num_frames == frames and features.fps == FPS
    for values in (features.energy, features.onset, features.vad):
        assert values.shape == (frames,) and values.min() >= 0.0 and values.max() <= 1.0
    assert features.pitch.shape == (frames,) and features.pitch.min() >= 0.0
    assert features.mel.shape == (frames, AUDIO.n_mels) and np.isfinite(features.mel).all()
    voiced = features.pitch[features.pitch > 0]
    assert len(voiced) > 0.3 * frames and 70.0 < np.median(voiced) < 250.0  # a male voice


@pytest.mark.parametrize("fps,num_frames", [(29.97, None), (30.0, 10), (25.0, 200)])
def test_any_frame_rate_and_length(speech_audio, fps, num_frames):
    features = extract_features(speech_audio, fps, num_frames=num_frames)
    expected = num_frames or math.ceil(speech_audio.duration * fps)
    assert features.energy.shape == features.pitch.shape == features.vad.shape == (expected,)
    assert features.mel.shape == (expected, AUDIO.n_mels)


def test_energy_follows_the_envelope():
    t = time_axis()
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 0.7 * t)) ** 2  # slow swells
    features = extract_features(seconds_of(envelope * white_noise()), FPS)
    frame_envelope = envelope[(np.arange(features.num_frames) / FPS * RATE).astype(int)]
    assert spearmanr(features.energy, frame_envelope).statistic > 0.9


def test_energy_tracks_speech_and_silence(speech_audio):
    pause = np.zeros(RATE)
    audio = seconds_of(np.concatenate([pause, speech_audio.samples, pause]))
    features = extract_features(audio, FPS)
    second = int(FPS)
    assert features.energy[: second - 2].max() < 0.05
    assert np.median(features.energy[second + 5 : -second - 5]) > 0.6


def test_pitch_of_a_tone():
    features = extract_features(seconds_of(0.5 * np.sin(2 * np.pi * 200.0 * time_axis())), FPS)
    assert np.median(features.pitch[2:-2]) == pytest.approx(200.0, rel=0.03)
    silent = extract_features(seconds_of(np.zeros(RATE)), FPS)
    assert silent.pitch.max() == 0.0 and silent.energy.max() == 0.0


def test_onsets_at_clicks():
    signal = 0.01 * white_noise()
    click_times = (0.5, 1.5, 2.5)
    burst = np.random.default_rng(1).standard_normal(800) * np.exp(-np.arange(800) / 200.0)  # sharp attack
    for click in click_times:
        start = int(click * RATE)
        signal[start : start + len(burst)] += 0.5 * burst
    onset = extract_features(seconds_of(signal), FPS).onset
    click_frames = [int(c * FPS) for c in click_times]
    assert min(onset[f : f + 2].max() for f in click_frames) > 0.5
    assert np.median(onset) < 0.3


def test_features_are_fast(speech_audio):
    minute = np.tile(speech_audio.samples, math.ceil(60.0 / speech_audio.duration))[: 60 * RATE]
    started = time.perf_counter()
    extract_features(seconds_of(minute), FPS)
    assert time.perf_counter() - started < 3.0  # ~0.5 s on an idle 2-core machine
