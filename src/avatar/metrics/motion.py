"""Measures of head and face motion, on MotionSeqs or plain arrays (METHODS.md, "Shared
evaluation ideas").

- :func:`delta_p`: mean absolute change of head angle between adjacent frames (VASA-1,
  Xu et al. 2024, section 4.2: "Delta P");
- :func:`glo_variation`, :func:`exp_variation`: how much the head (global motion) and the
  face (expression) move over time (Loopy, Jiang et al. 2024: "Glo" and "Exp");
- :func:`blink_rate`: blinks per minute from the eyelid curves;
- :func:`diversity`: mean pairwise distance of motions made from different seeds for the
  same audio (as in gesture generation, e.g. Li et al. 2021, Audio2Gestures);
- :func:`frechet_distance`: Frechet distance of two sets of embeddings, each taken as a
  Gaussian (FID, Heusel et al. 2017; FGD, Yoon et al. 2020);
- :func:`landmark_distance`: mean distance of corresponding (mouth) landmarks, in face
  widths (LMD, Chen et al. 2018), with :func:`motion_landmarks` to render motion through
  one :class:`~avatar.face.model.FaceModel` so that two motions are compared on one face.

Every function is pure: arrays in, numbers or arrays out.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
from scipy import linalg

from avatar.face import topology as topo
from avatar.face.model import FaceModel
from avatar.motion.types import ACTIONS, BLINK_ACTIONS, MotionSeq

# Expression = every facial action but the blinks, which blink_rate measures on their own
# (a blink is a large, brief spike that would otherwise dominate the variation).
EXPRESSION_ACTIONS = tuple(a for a in ACTIONS if a not in BLINK_ACTIONS)
BLINK_THRESHOLD = 0.5  # eyelid closed by at least half: a blink candidate
MIN_BLINK_SECONDS = 0.04  # shorter excursions (one frame at 25 fps is 0.04 s) still count
SECONDS_PER_MINUTE = 60.0
MOUTH_POINTS = tuple(topo.LIPS_ALL)
MIN_FACE_WIDTH = 1e-6  # guards the normalisation against degenerate meshes


def _rotation(motion: MotionSeq | np.ndarray) -> np.ndarray:
    """(T, 3) head angles in radians from a MotionSeq or an array."""
    rotation = motion.rotation if isinstance(motion, MotionSeq) else motion
    return np.asarray(rotation, np.float64).reshape(len(rotation), -1)


def delta_p(motion: MotionSeq | np.ndarray) -> float:
    """Mean absolute change of head angle per frame, in degrees (VASA-1's Delta P).

    ``motion``: a MotionSeq or its rotation (T, 3) yaw/pitch/roll in radians. The mean is
    over the T - 1 frame steps and the three angles; a still head gives 0. The value
    depends on the frame rate (per frame, as in the paper): compare at equal fps.
    """
    rotation = _rotation(motion)  # (T, 3)
    if len(rotation) < 2:
        return float("nan")
    return float(np.degrees(np.abs(np.diff(rotation, axis=0))).mean())


def glo_variation(motion: MotionSeq | np.ndarray) -> float:
    """Global head motion: the standard deviation over time of each head angle, in degrees,
    averaged over yaw, pitch and roll (Loopy's "Glo", in our motion space)."""
    rotation = _rotation(motion)  # (T, 3)
    if len(rotation) < 2:
        return float("nan")
    return float(np.degrees(rotation.std(axis=0)).mean())


def expression_matrix(motion: MotionSeq) -> np.ndarray:
    """(T, E) coefficients of the expression actions (every action but the blinks)."""
    return motion.actions[:, [ACTIONS.index(a) for a in EXPRESSION_ACTIONS]].astype(np.float64)


def exp_variation(motion: MotionSeq | np.ndarray) -> float:
    """Expression motion: the standard deviation over time of each expression coefficient,
    averaged over the coefficients (Loopy's "Exp", in our motion space).

    ``motion``: a MotionSeq (blinks left out, see EXPRESSION_ACTIONS) or a (T, E) array.
    """
    coeffs = expression_matrix(motion) if isinstance(motion, MotionSeq) else np.asarray(motion, np.float64)
    if len(coeffs) < 2:
        return float("nan")
    return float(coeffs.std(axis=0).mean())


def blink_curve(motion: MotionSeq) -> np.ndarray:
    """(T,) eyelid closure: the mean of both eyes' eyeBlink, 0 open .. 1 closed."""
    return np.asarray(motion.blink, np.float64)


def _runs_above(curve: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """[start, end) frame ranges where ``curve`` exceeds ``threshold``."""
    above = np.concatenate([[0], (curve > threshold).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(above))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def blink_count(curve: np.ndarray, fps: float, threshold: float = BLINK_THRESHOLD,
                min_seconds: float = MIN_BLINK_SECONDS) -> int:
    """Number of blinks: runs of ``curve`` (T,) above ``threshold`` lasting >= ``min_seconds``."""
    min_frames = max(1, int(round(min_seconds * fps)))
    return sum(1 for s, e in _runs_above(np.asarray(curve, np.float64), threshold) if e - s >= min_frames)


def blink_rate(motion: MotionSeq | np.ndarray, fps: float | None = None,
               threshold: float = BLINK_THRESHOLD, min_seconds: float = MIN_BLINK_SECONDS) -> float:
    """Blinks per minute from a MotionSeq (both eyes averaged) or a (T,) eyelid curve.

    A blink is a run of frames with closure above ``threshold`` lasting at least
    ``min_seconds``. People blink about 15-20 times a minute at rest and less while
    speaking (Bentivoglio et al. 1997), which the ground-truth rows show for our clips.
    """
    if isinstance(motion, MotionSeq):
        curve, fps = blink_curve(motion), motion.fps if fps is None else fps
    else:
        curve = np.asarray(motion, np.float64)
    if fps is None:
        raise ValueError("blink_rate needs fps for a plain curve")
    if len(curve) == 0:
        return float("nan")
    return blink_count(curve, fps, threshold, min_seconds) * SECONDS_PER_MINUTE * fps / len(curve)


def diversity(samples: Sequence[np.ndarray]) -> float:
    """Mean pairwise distance between motions generated with different seeds for one audio.

    ``samples``: N >= 2 arrays (T, D) of the same shape (e.g. head angles in degrees, or
    expression coefficients). The distance of two samples is the mean over frames of the
    Euclidean distance of their frame vectors. 0 means every seed gives the same motion.
    """
    arrays = [np.asarray(s, np.float64).reshape(len(s), -1) for s in samples]
    if len(arrays) < 2:
        return float("nan")
    dists = [np.linalg.norm(a - b, axis=-1).mean() for a, b in combinations(arrays, 2)]
    return float(np.mean(dists))


def _gaussian(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of embeddings (N, D)."""
    emb = np.asarray(emb, np.float64)
    if emb.ndim != 2 or len(emb) < 2:
        raise ValueError(f"need at least 2 embeddings of shape (N, D), got {emb.shape}")
    return emb.mean(axis=0), np.cov(emb, rowvar=False)


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """Frechet distance between two sets of embeddings (N, D) and (M, D), each taken as a
    Gaussian (Heusel et al. 2017, FID; Yoon et al. 2020, FGD):

        |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))

    0 for identical sets; grows with a shift of the mean or a change of the spread.
    """
    mu_a, cov_a = _gaussian(emb_a)
    mu_b, cov_b = _gaussian(emb_b)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(covmean):  # numerical noise of a (nearly) singular product
        covmean = covmean.real
    value = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * covmean)
    return float(max(value, 0.0))


def motion_landmarks(face: FaceModel, motion: MotionSeq, posed: bool = False) -> np.ndarray:
    """(T, 478, 3) landmarks of ``motion`` rendered through ``face`` (pixels of its source).

    With ``posed=False`` the head stays in the source pose (rotation, translation and scale
    of the motion are ignored), so only the face's own deformation is compared: the lip-sync
    view. With ``posed=True`` the head moves as in the motion.
    """
    if not posed:
        motion = motion.copy()
        motion.rotation[:] = 0.0
        motion.translation[:] = 0.0
        motion.scale[:] = 1.0
    frames = [face.points(motion[t]) for t in range(len(motion))]  # T x (478, 3)
    return np.stack(frames) if frames else np.zeros((0, topo.NUM_LANDMARKS, 3))


def face_width(landmarks: np.ndarray) -> np.ndarray:
    """(T,) distance between the widest points of the face oval, per frame (pixels)."""
    L = np.asarray(landmarks, np.float64)[..., :2]
    return np.maximum(np.linalg.norm(L[:, topo.CHEEK_L] - L[:, topo.CHEEK_R], axis=-1), MIN_FACE_WIDTH)


def landmark_distance(pred: np.ndarray, truth: np.ndarray, points: Sequence[int] = MOUTH_POINTS) -> float:
    """Mean distance of corresponding landmarks, in face widths (LMD, Chen et al. 2018).

    ``pred``, ``truth``: (T, 478, >=2) landmarks in the same image coordinates (e.g. both
    from :func:`motion_landmarks` on one face). Only x, y and the ``points`` (default: the
    lips) are compared; each frame is normalised by the face width of ``truth``.
    """
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if pred.shape[:2] != truth.shape[:2]:
        raise ValueError(f"landmark shapes differ: {pred.shape} vs {truth.shape}")
    if len(truth) == 0:
        return float("nan")
    idx = list(points)
    dist = np.linalg.norm(pred[:, idx, :2] - truth[:, idx, :2], axis=-1)  # (T, P)
    return float((dist.mean(axis=1) / face_width(truth)).mean())
