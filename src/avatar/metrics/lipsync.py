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


def _mid_lip_gap(landmarks: np.ndarray, left: int, right: int) -> np.ndarray:
    """(T,) inner-lip gap at the middle of the mouth over the distance of two landmarks."""
    L = np.asarray(landmarks, np.float64)[..., :2]  # (T, 478, 2)
    up = L[:, [u for u, _ in MID_LIP_PAIRS]]  # (T, 3, 2)
    lo = L[:, [l for _, l in MID_LIP_PAIRS]]
    gap = np.linalg.norm(lo - up, axis=-1).mean(-1)  # (T,)
    width = np.linalg.norm(L[:, left] - L[:, right], axis=-1)  # (T,)
    return gap / np.maximum(width, 1e-6)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T,) inner-lip gap in face widths from tracked landmarks (T, 478, >=2)."""
    return _mid_lip_gap(landmarks, topo.CHEEK_L, topo.CHEEK_R)


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


# --- self-reenactment measures (benchmarks/bench_selfreenact.py) -------------------------
# "Closed" rule: gap / mouth width below min(CLOSED_RATIO_MAX, own 5th percentile + CLOSED_MARGIN).
# MediaPipe keeps a small, per-person gap for touching lips, so the threshold follows each
# track's own floor, capped so a track that never closes is not called closed.
CLOSED_RATIO_MAX = 0.08
CLOSED_MARGIN = 0.03


def opening_ratio(landmarks: np.ndarray) -> np.ndarray:
    """(T,) inner-lip gap (pairs 82/87, 13/14, 312/317) over mouth width (corners 61-291)."""
    return _mid_lip_gap(landmarks, topo.MOUTH_CORNER_R, topo.MOUTH_CORNER_L)


def closed_threshold(ratio: np.ndarray, margin: float = CLOSED_MARGIN,
                     cap: float = CLOSED_RATIO_MAX) -> float:
    """The ratio below which this track's lips count as closed (NaNs ignored)."""
    r = np.asarray(ratio, float)
    r = r[np.isfinite(r)]
    return float(cap) if len(r) == 0 else float(min(cap, np.percentile(r, 5) + margin))


def runs(mask: np.ndarray) -> np.ndarray:
    """(N, 2) [start, end) of the runs of True in a (T,) mask."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])  # (T+2,)
    d = np.diff(m.astype(np.int8))
    return np.stack([np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]], 1)


def closed_runs(closed: np.ndarray, min_len: int = 2) -> np.ndarray:
    """(N, 2) closures: runs of >= min_len closed frames lying between openings (a run that
    touches the first or last frame is not bounded by openings and is left out)."""
    r = runs(closed)
    T = len(closed)
    keep = (r[:, 1] - r[:, 0] >= min_len) & (r[:, 0] > 0) & (r[:, 1] < T)
    return r[keep]


def closure_recall(real_runs: np.ndarray, out_closed: np.ndarray, tol: int = 2) -> tuple[float, int]:
    """(share of real closure runs during which the output is closed at some frame within
    +-tol frames of the run, number of runs)."""
    c = np.asarray(out_closed, bool)  # (T,)
    cs = np.concatenate([[0], np.cumsum(c)])  # (T+1,)
    if len(real_runs) == 0:
        return float("nan"), 0
    a = np.clip(real_runs[:, 0] - tol, 0, len(c))
    b = np.clip(real_runs[:, 1] + tol, 0, len(c))
    hit = cs[b] - cs[a] > 0  # (N,)
    return float(hit.mean()), len(hit)


def false_closure_share(real_ratio: np.ndarray, out_closed: np.ndarray, q: float = 75.0) -> tuple[float, int]:
    """(share of wide-open real frames - ratio above the real track's q-th percentile - in
    which the output is closed, number of wide-open frames)."""
    r = np.asarray(real_ratio, float)
    ok = np.isfinite(r)
    wide = ok & (r > np.percentile(r[ok], q)) if ok.any() else ok  # (T,)
    if not wide.any():
        return float("nan"), 0
    return float(np.asarray(out_closed, bool)[wide].mean()), int(wide.sum())


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over the frames where both are finite."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def shifted_floor(curve: np.ndarray, shift: int) -> float:
    """Chance level: the correlation of a curve with itself shifted by ``shift`` frames."""
    c = np.asarray(curve, float)
    return pearson(c[:-shift], c[shift:]) if 0 < shift < len(c) - 2 else float("nan")
