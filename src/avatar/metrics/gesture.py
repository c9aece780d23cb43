"""Gesture metrics (TANGO §4.2): beat consistency and diversity of body motion.

Beat consistency (BC, Liu et al. 2022 "BEAT"): for every audio beat (onset), how close the
nearest motion beat is, scored exp(-d^2 / 2 sigma^2) and averaged. Motion beats are the
moments the upper body's joints slow down most (local minima of their mean speed): a
gesture's stroke ends on the stressed syllable.

Diversity (Li et al. 2021, "AudioDance"-style): the mean distance between motion windows
taken at different times; a method that repeats the same movement scores low.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

BC_SIGMA_SECONDS = 0.1  # tolerance of beat alignment (BEAT uses 0.1 s at 15 fps)
ONSET_MIN_STRENGTH = 0.3  # onset strength (0..1) counted as an audio beat
BEAT_MIN_GAP_SECONDS = 0.2  # two beats closer than this are one
SPEED_SMOOTH_SECONDS = 0.05  # speed is smoothed before its minima are found (tracker jitter)
SPEED_MIN_PROMINENCE = 0.1  # a slow-down must be this share of the median speed to count
DIVERSITY_WINDOW_SECONDS = 1.0
DIVERSITY_PAIRS = 2000


def audio_beats(onset: np.ndarray, fps: float) -> np.ndarray:
    """Times (s) of audio beats: peaks of the onset strength (T,) above the threshold."""
    peaks, _ = find_peaks(onset, height=ONSET_MIN_STRENGTH,
                          distance=max(1, int(round(BEAT_MIN_GAP_SECONDS * fps))))
    return peaks / fps


def joint_speed(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T,) mean joint speed (units/s) of positions (T, J, 3), lightly smoothed."""
    velocity = np.gradient(positions, axis=0) * fps  # (T, J, 3)
    speed = np.linalg.norm(velocity, axis=-1).mean(axis=1)  # (T,)
    return gaussian_filter1d(speed, max(SPEED_SMOOTH_SECONDS * fps, 1e-3), mode="nearest")


def motion_beats(positions: np.ndarray, fps: float) -> np.ndarray:
    """Times (s) of motion beats: local minima of the joints' mean speed."""
    speed = joint_speed(positions, fps)
    prominence = SPEED_MIN_PROMINENCE * max(float(np.median(speed)), 1e-9)
    minima, _ = find_peaks(-speed, prominence=prominence,
                           distance=max(1, int(round(BEAT_MIN_GAP_SECONDS * fps))))
    return minima / fps


def beat_consistency(audio_times: np.ndarray, motion_times: np.ndarray,
                     sigma: float = BC_SIGMA_SECONDS) -> float:
    """Mean over audio beats of exp(-(distance to the nearest motion beat)^2 / 2 sigma^2)."""
    audio_times, motion_times = np.asarray(audio_times), np.asarray(motion_times)
    if audio_times.size == 0 or motion_times.size == 0:
        return 0.0
    d = np.abs(audio_times[:, None] - motion_times[None, :]).min(axis=1)
    return float(np.mean(np.exp(-(d ** 2) / (2 * sigma ** 2))))


def diversity(positions: np.ndarray, fps: float, pairs: int = DIVERSITY_PAIRS, seed: int = 0) -> float:
    """Mean Euclidean distance between random pairs of 1-s windows of positions (T, J, 3),
    per joint and frame (units of the positions)."""
    window = max(1, int(round(DIVERSITY_WINDOW_SECONDS * fps)))
    starts = len(positions) - window + 1
    if starts < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, starts, size=(2, pairs))
    keep = np.abs(a - b) >= window  # non-overlapping windows only
    a, b = a[keep], b[keep]
    if a.size == 0:
        return 0.0
    frames = np.arange(window)
    wa, wb = positions[a[:, None] + frames], positions[b[:, None] + frames]  # (P, W, J, 3)
    return float(np.linalg.norm(wa - wb, axis=-1).mean())
