"""Small numpy signal helpers: centred analysis windows and a mel filterbank.

Written in numpy rather than taken from librosa: importing librosa's feature modules costs
2-4 s of start-up (scipy.signal, numba), longer than analysing a minute of audio.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MEL_BREAK_HZ = 700.0  # HTK mel scale: mel = 2595 * log10(1 + f / 700)
MEL_SCALE = 2595.0


def centred_windows(
    padded: np.ndarray, pad: int, length: int, hop: int, first: int, count: int
) -> np.ndarray:
    """Windows of ``length`` samples centred on frames ``first .. first + count - 1``; (count, length).

    Frame ``j`` is centred on sample ``j * hop`` of the signal; ``padded`` is the signal
    with ``pad >= length // 2`` zeros on both sides. Returns a read-only strided view.
    """
    start = first * hop - length // 2 + pad
    span = padded[start : start + (count - 1) * hop + length]
    return sliding_window_view(span, length)[::hop]


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz -> HTK mel."""
    return MEL_SCALE * np.log10(1.0 + np.asarray(hz) / MEL_BREAK_HZ)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """HTK mel -> frequency in Hz."""
    return MEL_BREAK_HZ * (10.0 ** (np.asarray(mel) / MEL_SCALE) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular mel filters of equal area, 0 Hz to Nyquist; (n_mels, n_fft // 2 + 1)."""
    bins_hz = np.fft.rfftfreq(n_fft, d=1.0 / rate)  # (n_fft // 2 + 1,)
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(rate / 2.0), n_mels + 2))  # (n_mels + 2,)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1) each
    rising = (bins_hz - low) / (centre - low)
    falling = (high - bins_hz) / (high - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (high - low))  # equal area, so wide bands do not dominate
