"""Per-video-frame audio features: loudness, pitch, onsets, log-mel and voice activity.

Everything is computed once on a fine analysis grid (10 ms hop) and then pooled into
video frames, frame ``i`` covering ``[i / fps, (i + 1) / fps)``, so any fps works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avatar.audio.dsp import centred_windows, mel_filterbank
from avatar.audio.io import resample
from avatar.audio.types import Audio, AudioFeatures
from avatar.audio.vad import voice_activity
from avatar.config import AUDIO

HOP_SECONDS = 0.010  # analysis hop: 100 analysis frames per second
N_FFT_SECONDS = 0.032  # mel analysis window (512 samples at 16 kHz)
RMS_HOPS = 2  # loudness window = 2 hops (20 ms)
BLOCK_FRAMES = 1000  # analysis frames per block (10 s): small arrays stay in cache, bounded memory

# Loudness: RMS dB mapped to [0, 1] between a fixed floor and the utterance's loud level.
ENERGY_FLOOR_DB = -60.0
ENERGY_MIN_RANGE_DB = 20.0  # quiet files are not blown up to full scale
LOUD_PERCENTILE = 99  # "max" level, robust to a single click
MIN_POWER = 1e-10  # -100 dBFS, avoids log(0)

# Pitch: normalised autocorrelation, the shortest strong period in the speech f0 range.
F0_MIN_HZ = 65.0
F0_MAX_HZ = 500.0
PITCH_WINDOW_SECONDS = 0.040  # >= 2 periods of F0_MIN_HZ
VOICING_THRESHOLD = 0.5  # min normalised autocorrelation at the period for a voiced frame
OCTAVE_TOLERANCE = 0.9  # earliest peak within 90 % of the best one (avoids octave-down errors)
VOICED_SHARE = 0.5  # a video frame is voiced if at least half of its analysis frames are
PITCH_MIN_DB = -50.0  # frames quieter than this are unvoiced

MEL_FLOOR_DB = -100.0  # log-mel floor (matches MIN_POWER)
MEL_MIN_STD_DB = 1.0  # per-band std floor for normalisation (constant bands stay finite)


def extract_features(
    audio: Audio, fps: float, num_frames: int | None = None, vad: np.ndarray | None = None
) -> AudioFeatures:
    """Audio features at the video frame rate; every array has T = ``num_frames`` rows.

    T defaults to ``ceil(duration * fps)``; frames past the end of the audio read as silence.
    ``vad`` (T,) is computed with :func:`voice_activity` unless given.
    """
    if num_frames is None:
        num_frames = math.ceil(audio.duration * fps)
    audio16 = resample(audio, AUDIO.sample_rate)
    samples, rate = audio16.samples, audio16.sample_rate
    hop = round(HOP_SECONDS * rate)
    frames = _analyse(samples, rate, hop)  # per 10 ms analysis frame
    frame_of = _video_frame_index(len(frames.power), hop / rate, fps)  # (F,)
    if vad is None:
        vad = voice_activity(audio16, fps, num_frames)
    return AudioFeatures(
        fps=fps,
        energy=_energy(_pool_mean(frames.power, frame_of, num_frames)),
        pitch=_pool_pitch(frames.f0, frame_of, num_frames),
        onset=_onset(frames.mel_power, frame_of, num_frames),
        vad=_fit_length(np.asarray(vad, dtype=np.float32), num_frames),
        mel=_normalised_log_mel(_pool_mean(frames.mel_power, frame_of, num_frames)),
    )


def _video_frame_index(num_analysis: int, hop_seconds: float, fps: float) -> np.ndarray:
    """Video frame each analysis frame (by its centre time) falls in; (F,) int, sorted."""
    return np.floor(np.arange(num_analysis) * hop_seconds * fps).astype(np.int64)


def _pool(values: np.ndarray, frame_of: np.ndarray, num_frames: int, reduce) -> tuple[np.ndarray, np.ndarray]:
    """Reduce analysis rows per video frame with a ufunc; returns ((T, ...), counts (T,)).

    Video frames without analysis rows (past the audio, or fps > 100) get zeros, count 0.
    """
    starts = np.searchsorted(frame_of, np.arange(num_frames))  # (T,)
    counts = np.diff(np.append(starts, np.searchsorted(frame_of, num_frames)))
    pooled = np.zeros((num_frames,) + values.shape[1:], dtype=np.float64)
    present = counts > 0
    if present.any():
        pooled[present] = reduce.reduceat(values, starts[present], axis=0)
    return pooled, counts


def _pool_mean(values: np.ndarray, frame_of: np.ndarray, num_frames: int) -> np.ndarray:
    """Mean of analysis rows per video frame; (T, ...) (0 where a frame has none)."""
    sums, counts = _pool(values, frame_of, num_frames, np.add)
    return sums / np.maximum(counts, 1).reshape((-1,) + (1,) * (values.ndim - 1))


@dataclass
class _AnalysisFrames:
    """Features per centred analysis frame (F = 1 + N // hop frames)."""

    power: np.ndarray  # (F,) mean square over RMS_HOPS hops
    mel_power: np.ndarray  # (F, n_mels)
    f0: np.ndarray  # (F,) Hz, 0 where unvoiced


def _analyse(samples: np.ndarray, rate: int, hop: int) -> _AnalysisFrames:
    """Loudness, mel power and f0 on the analysis grid, BLOCK_FRAMES frames at a time."""
    lengths = {
        "rms": RMS_HOPS * hop,
        "fft": round(N_FFT_SECONDS * rate),
        "pitch": round(PITCH_WINDOW_SECONDS * rate),
    }
    pad = max(lengths.values())
    padded = np.pad(samples.astype(np.float64), pad)
    num = 1 + len(samples) // hop
    power, mel, f0 = [], [], []
    for first in range(0, num, BLOCK_FRAMES):
        count = min(BLOCK_FRAMES, num - first)
        windows = {k: centred_windows(padded, pad, n, hop, first, count) for k, n in lengths.items()}
        power.append(np.mean(windows["rms"] ** 2, axis=1))
        mel.append(_mel_power(windows["fft"], rate))
        f0.append(_pitch(windows["pitch"], rate))
    return _AnalysisFrames(np.concatenate(power), np.concatenate(mel), np.concatenate(f0))


def _energy(power: np.ndarray) -> np.ndarray:
    """Per-frame mean power -> loudness in [0, 1]; (T,) float32."""
    db = 10.0 * np.log10(power + MIN_POWER)
    if db.size == 0:
        return db.astype(np.float32)
    loud = max(np.percentile(db, LOUD_PERCENTILE), ENERGY_FLOOR_DB + ENERGY_MIN_RANGE_DB)
    return np.clip((db - ENERGY_FLOOR_DB) / (loud - ENERGY_FLOOR_DB), 0.0, 1.0).astype(np.float32)


def _mel_power(windows: np.ndarray, rate: int) -> np.ndarray:
    """Hann-windowed power spectra through the mel filterbank; (count, n_mels)."""
    n_fft = windows.shape[1]
    spectrum = np.abs(np.fft.rfft(windows * np.hanning(n_fft), axis=1)) ** 2  # (count, n_fft // 2 + 1)
    return spectrum @ mel_filterbank(rate, n_fft, AUDIO.n_mels).T


def _normalised_log_mel(mel_power: np.ndarray) -> np.ndarray:
    """Log-mel in dB, mean/variance normalised per band over the utterance; (T, n_mels)."""
    log_mel = np.maximum(10.0 * np.log10(mel_power + MIN_POWER), MEL_FLOOR_DB)
    if len(log_mel) == 0:
        return log_mel.astype(np.float32)
    std = np.maximum(log_mel.std(axis=0), MEL_MIN_STD_DB)
    return ((log_mel - log_mel.mean(axis=0)) / std).astype(np.float32)


def _onset(mel_power: np.ndarray, frame_of: np.ndarray, num_frames: int) -> np.ndarray:
    """Spectral-flux onset strength, max per video frame, scaled to [0, 1]; (T,) float32."""
    log_mel = 10.0 * np.log10(mel_power + MIN_POWER)  # (F, n_mels)
    rise = np.maximum(0.0, np.diff(log_mel, axis=0)).mean(axis=1)  # (F - 1,) mean dB increase
    flux = np.concatenate([[0.0], rise])  # (F,)
    peak, _ = _pool(flux, frame_of, num_frames, np.maximum)
    top = np.percentile(peak, LOUD_PERCENTILE) if peak.size else 0.0
    if top <= 0.0:
        return np.zeros(num_frames, dtype=np.float32)
    return np.clip(peak / top, 0.0, 1.0).astype(np.float32)


def _pitch(windows: np.ndarray, rate: int) -> np.ndarray:
    """f0 in Hz (0 if unvoiced) per window from the normalised autocorrelation; (count,).

    Much faster than pYIN/YIN (one FFT per frame) and good enough to drive head motion.
    """
    frames = windows - windows.mean(axis=1, keepdims=True)  # (count, W)
    width = frames.shape[1]
    spectrum = np.fft.rfft(frames, n=2 * width, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :width]  # (count, W)
    # Normalise by the zero lag and by the shrinking overlap (unbiased estimate).
    overlap = width / np.maximum(width - np.arange(width), 1)  # (W,)
    acf = acf / (acf[:, :1] + MIN_POWER) * overlap
    lag_min, lag_max = int(rate / F0_MAX_HZ), min(int(rate / F0_MIN_HZ), width - 2)
    period = lag_min + _earliest_strong_peak(acf[:, lag_min : lag_max + 1])  # (count,)
    strength = acf[np.arange(len(acf)), period]
    loud = 10.0 * np.log10(np.mean(frames**2, axis=1) + MIN_POWER) > PITCH_MIN_DB
    voiced = (strength > VOICING_THRESHOLD) & loud
    return np.where(voiced, rate / period, 0.0)


def _earliest_strong_peak(band: np.ndarray) -> np.ndarray:
    """Index of the first local maximum within OCTAVE_TOLERANCE of each row's max; (F,)."""
    is_peak = np.zeros_like(band, dtype=bool)
    is_peak[:, 1:-1] = (band[:, 1:-1] >= band[:, :-2]) & (band[:, 1:-1] >= band[:, 2:])
    strong = is_peak & (band >= OCTAVE_TOLERANCE * band.max(axis=1, keepdims=True))
    no_peak = ~strong.any(axis=1)
    first = np.argmax(strong, axis=1)
    first[no_peak] = np.argmax(band[no_peak], axis=1)
    return first


def _pool_pitch(f0: np.ndarray, frame_of: np.ndarray, num_frames: int) -> np.ndarray:
    """Mean f0 over the voiced analysis frames of each video frame (0 if mostly unvoiced); (T,)."""
    f0_sum, counts = _pool(f0, frame_of, num_frames, np.add)
    voiced_count, _ = _pool((f0 > 0).astype(np.float64), frame_of, num_frames, np.add)
    mostly_voiced = (voiced_count >= VOICED_SHARE * counts) & (voiced_count > 0)
    pitch = np.where(mostly_voiced, f0_sum / np.maximum(voiced_count, 1), 0.0)
    return pitch.astype(np.float32)


def _fit_length(values: np.ndarray, num_frames: int) -> np.ndarray:
    """Truncate or zero-pad a (T',) array to (num_frames,)."""
    out = np.zeros(num_frames, dtype=values.dtype)
    n = min(num_frames, len(values))
    out[:n] = values[:n]
    return out
