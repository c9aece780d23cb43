"""Small vectorised signal helpers shared by the rule-based motion generator.

Everything here works on whole curves (numpy arrays over video frames); nothing loops
over frames in Python, so an hour of motion (90 000 frames at 25 fps) stays cheap.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import lfilter


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, a C1-smooth ramp in between."""
    u = np.clip((np.asarray(x, np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def moving_average(x: np.ndarray, frames: int) -> np.ndarray:
    """Centred box filter over ``frames`` samples (edges repeat the end values)."""
    x = np.asarray(x, np.float64)
    if frames <= 1 or len(x) == 0:
        return x.copy()
    return uniform_filter1d(x, size=int(frames), axis=0, mode="nearest")


def dilate(x: np.ndarray, frames: int) -> np.ndarray:
    """Running maximum over ``frames`` samples, centred."""
    x = np.asarray(x, np.float64)
    if frames <= 1 or len(x) == 0:
        return x.copy()
    return maximum_filter1d(x, size=int(frames), mode="nearest")


def smooth_noise(rng: np.random.Generator, num: int, fps: float, tau_s: float) -> np.ndarray:
    """Smooth, zero-mean, unit-variance random curve with correlation time ``tau_s``.

    White noise through two cascaded one-pole low-passes (a critically damped
    Ornstein-Uhlenbeck process), so the curve and its velocity are continuous. The
    stationary variance of (1-a)^2 / (1 - a z^-1)^2 driven by unit white noise is
    (1-a)^4 (1+a^2) / (1-a^2)^3; we divide by its square root. A burn-in of 4 tau is
    generated and dropped so the curve starts in its stationary distribution.
    """
    a = float(np.exp(-1.0 / max(tau_s * fps, 1e-6)))
    burn = int(np.ceil(4.0 * tau_s * fps))
    white = rng.standard_normal(num + burn)  # (num + burn,)
    b = [(1.0 - a) ** 2]
    den = [1.0, -2.0 * a, a * a]
    y = lfilter(b, den, white)[burn:]
    var = (1.0 - a) ** 4 * (1.0 + a * a) / (1.0 - a * a) ** 3
    return y / np.sqrt(var)


def local_peaks(x: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of local maxima of ``x`` that reach ``threshold`` (plateaus count once)."""
    x = np.asarray(x, np.float64)
    if len(x) < 3:
        return np.zeros(0, np.int64)
    mid = x[1:-1]
    is_peak = (mid > x[:-2]) & (mid >= x[2:]) & (mid >= threshold)
    return np.flatnonzero(is_peak) + 1


def thin_events(times: np.ndarray, min_gap: float) -> np.ndarray:
    """Boolean mask keeping sorted event ``times`` at least ``min_gap`` after the previous.

    One vectorised pass: an event too close to its predecessor is dropped. Dropping is
    conservative (never leaves two events closer than ``min_gap``).
    """
    times = np.asarray(times, np.float64)
    keep = np.ones(len(times), bool)
    if len(times) > 1:
        keep[1:] = np.diff(times) >= min_gap
    return keep


def greedy_min_gap(indices: np.ndarray, min_gap: int) -> np.ndarray:
    """Keep sorted event ``indices`` so consecutive kept ones are >= ``min_gap`` apart.

    A short Python loop over *events* (a few per second), not over frames.
    """
    kept: list[int] = []
    last = -(10**12)
    for i in np.asarray(indices, np.int64):
        if i - last >= min_gap:
            kept.append(int(i))
            last = int(i)
    return np.asarray(kept, np.int64)


def ragged_windows(first: np.ndarray, stop: np.ndarray, num_frames: int):
    """Flatten per-item frame ranges [first_i, stop_i) clipped to [0, num_frames).

    Returns ``(owner, frame)``: for each (item, frame) pair, the item index and the frame
    index, as flat int arrays of the same length M = total window length.
    """
    first = np.clip(np.asarray(first, np.int64), 0, num_frames)
    stop = np.clip(np.asarray(stop, np.int64), 0, num_frames)
    lengths = np.maximum(stop - first, 0)  # (N,)
    owner = np.repeat(np.arange(len(first)), lengths)  # (M,)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    frame = first[owner] + offsets  # (M,)
    return owner, frame


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop frame indices of the runs of True in a boolean ``mask``."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return edges[0::2], edges[1::2]


def raised_cosine(u: np.ndarray) -> np.ndarray:
    """1 at u = 0 falling smoothly to 0 at |u| >= 1 (half a Hann window)."""
    u = np.clip(np.abs(u), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * u))
