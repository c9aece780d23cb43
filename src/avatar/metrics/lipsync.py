"""Lip-sync measures on tracked faces (METHODS.md, "Shared evaluation ideas").

- mouth opening: inner-lip gap at the middle of the mouth, in face widths;
- bilabial closure: the share of p/b/m phones during which the lips touch;
- opening-vs-loudness correlation (Pearson) over the frames.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from avatar.audio.types import Phone
from avatar.face import topology as topo

BILABIALS = frozenset({"P", "B", "M"})
# Inner-lip pairs at the middle of the mouth (upper, lower).
MID_LIP_PAIRS = [(82, 87), (13, 14), (312, 317)]
CLOSED_GAP = 0.02  # face widths (~3 mm): below this the lips touch


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T,) inner-lip gap in face widths from tracked landmarks (T, 478, >=2)."""
    L = np.asarray(landmarks, np.float64)[..., :2]
    up = L[:, [u for u, _ in MID_LIP_PAIRS]]
    lo = L[:, [l for _, l in MID_LIP_PAIRS]]
    gap = np.linalg.norm(lo - up, axis=-1).mean(-1)
    width = np.linalg.norm(L[:, topo.CHEEK_L] - L[:, topo.CHEEK_R], axis=-1)
    return gap / np.maximum(width, 1e-6)


def phone_frames(phone: Phone, fps: float, num_frames: int) -> np.ndarray:
    """Frames whose centre falls inside the phone (at least the nearest one)."""
    centres = (np.arange(num_frames) + 0.5) / fps
    inside = np.nonzero((centres >= phone.start) & (centres < phone.end))[0]
    if len(inside) == 0:
        mid = 0.5 * (phone.start + phone.end)
        inside = np.array([min(int(mid * fps), num_frames - 1)])
    return inside


def bilabial_closure(opening: np.ndarray, phones: Iterable[Phone], fps: float,
                     closed_gap: float = CLOSED_GAP) -> tuple[float, int]:
    """(share of p/b/m phones with the lips closed in at least one of their frames, count)."""
    hits = []
    for p in phones:
        if p.label in BILABIALS:
            frames = phone_frames(p, fps, len(opening))
            hits.append(bool(opening[frames].min() < closed_gap))
    return (float(np.mean(hits)) if hits else float("nan")), len(hits)


def opening_energy_correlation(opening: np.ndarray, energy: Sequence[float]) -> float:
    """Pearson correlation of mouth opening with loudness over the common frames."""
    n = min(len(opening), len(energy))
    a, b = np.asarray(opening[:n], float), np.asarray(energy[:n], float)
    if n < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
