"""Blinks from tracked eyes: eye aspect ratio (EAR) per eye and blink events.

EAR (Soukupova & Cech 2016) = (|p2-p6| + |p3-p5|) / (2 |p1-p4|) from six eye-contour points:
corners p1/p4, two upper-lid points p2/p3 and the lower-lid points below them p6/p5.
A blink is a run of frames where the mean EAR of both eyes is below ``ratio`` times the
clip's own open-eye EAR (its median).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar.metrics.lipsync import runs

# (p1, p2, p3, p4, p5, p6) per eye, from topology's eye contours.
EAR_R = (33, 160, 158, 133, 153, 144)
EAR_L = (263, 387, 385, 362, 380, 373)
BLINK_RATIO = 0.75  # EAR below 75% of the clip's median counts as closed


def eye_aspect_ratio(landmarks: np.ndarray, idx=EAR_R) -> np.ndarray:
    """(T,) EAR of one eye from landmarks (T, 478, >=2)."""
    P = np.asarray(landmarks, np.float64)[:, list(idx), :2]  # (T, 6, 2)
    v = np.linalg.norm(P[:, 1] - P[:, 5], axis=-1) + np.linalg.norm(P[:, 2] - P[:, 4], axis=-1)
    h = np.linalg.norm(P[:, 0] - P[:, 3], axis=-1)
    return v / np.maximum(2 * h, 1e-9)


def ear(landmarks: np.ndarray) -> np.ndarray:
    """(T,) mean EAR of both eyes."""
    return 0.5 * (eye_aspect_ratio(landmarks, EAR_R) + eye_aspect_ratio(landmarks, EAR_L))


@dataclass
class Blink:
    start: int  # first frame below the threshold
    frames: int  # duration in frames
    min_ear: float  # EAR at the peak of the blink


def blink_events(ear_curve: np.ndarray, ratio: float = BLINK_RATIO, max_frames: int | None = None) -> list[Blink]:
    """Runs of the (T,) EAR below ``ratio`` * median (NaN frames count as open)."""
    e = np.asarray(ear_curve, float)
    ok = np.isfinite(e)
    if not ok.any():
        return []
    below = ok & (e < ratio * np.median(e[ok]))  # (T,)
    out = []
    for a, b in runs(below):
        if max_frames is None or b - a <= max_frames:
            out.append(Blink(int(a), int(b - a), float(e[a:b].min())))
    return out


def blink_rate(events: list, num_frames: int, fps: float) -> float:
    """Blinks per minute."""
    minutes = num_frames / fps / 60.0
    return len(events) / minutes if minutes > 0 else float("nan")
