"""Tracking a video for the dataset: face mesh per frame, extra faces, scene-cut cues and,
optionally, the upper-body joints (avatar.data.body).

The video is decoded one frame at a time (constant memory apart from the landmarks) and
resampled to the dataset frame rate by picking, for each output frame, the source frame
shown at its centre time. Only those frames are tracked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from avatar.data.body import missing_rows
from avatar.face import geometry, topology as topo
from avatar.face.model import face_template
from avatar.face.tracker import FaceObservation, FaceTracker
from avatar.metrics.lipsync import mouth_opening

MAX_FACES = 2  # enough to tell "one face" from "several faces"
THUMB_SIZE = 32  # px side of the thumbnails compared for scene cuts
# Scene cut: a frame-to-frame thumbnail change far above the local typical change.
CUT_MIN_CHANGE = 0.02  # mean absolute change in [0, 1] below which nothing is a cut
CUT_CONTRAST = 12.0  # change / local median change at a cut (talking heads stay below ~10)
CUT_MEDIAN_FLOOR = 0.002  # floor of the local median (still shots have ~0 change)
CUT_WINDOW_SECONDS = 1.0  # span of the local median
# Reference frame: head pose near the clip's median, eyes open, mouth most closed.
REFERENCE_POSE_QUANTILE = 0.25  # candidates: the quarter of frames nearest the median pose
LANDMARK_SMOOTH_FRAMES = 1.0  # sigma (frames) of the landmark smoothing before re-rendering
EYE_MID_PAIRS = [(159, 145), (386, 374)]  # (upper, lower) lid middles of the right, left eye


@dataclass
class TrackedVideo:
    """Per-frame tracking results of one video at the dataset frame rate (T frames)."""

    fps: float
    size: tuple[int, int]  # (width, height)
    landmarks: np.ndarray  # (T, 478, 3) float32 pixels of the largest face; NaN where none
    extra_faces: np.ndarray  # (T,) int: other faces beside the largest one
    change: np.ndarray  # (T,) float32 thumbnail change from the previous frame, in [0, 1]
    # (T, len(BODY_JOINTS), 3) float32 x, y px + visibility; NaN rows: no person (or not
    # looked for); None: the body was not tracked
    body_points: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.landmarks)

    @property
    def tracked(self) -> np.ndarray:
        """(T,) bool: frames where a face was found."""
        return ~np.isnan(self.landmarks[:, 0, 0])


def resample_frames(frames: Iterable[np.ndarray], source_fps: float, fps: float) -> Iterator[tuple[np.ndarray, int]]:
    """Yield ``(frame, repeats)``: how many output frames at ``fps`` show each source frame.

    Output frame i shows the source frame at its centre time (i + 0.5) / fps; repeats is
    0 for source frames that are dropped.
    """
    ratio = source_fps / fps
    emitted = 0
    for index, frame in enumerate(frames):
        repeats = 0
        while math.floor((emitted + repeats + 0.5) * ratio) <= index:
            repeats += 1
        emitted += repeats
        yield frame, repeats


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    """(THUMB_SIZE, THUMB_SIZE, 3) float32 in [0, 1]: the frame's coarse colour layout."""
    small = cv2.resize(frame, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def extra_faces(faces: list[FaceObservation]) -> int:
    """Faces beyond the largest one, not counting duplicates centred inside its box."""
    if not faces:
        return 0
    x0, y0, x1, y1 = faces[0].box
    centres = [f.landmarks[:, :2].mean(0) for f in faces[1:]]
    return sum(1 for cx, cy in centres if not (x0 <= cx <= x1 and y0 <= cy <= y1))


def track_frames(frames: Iterable[tuple[np.ndarray, int]], tracker: FaceTracker, fps: float,
                 size: tuple[int, int], on_frame=lambda: None,
                 body: Callable[[np.ndarray, int], np.ndarray] | None = None) -> TrackedVideo:
    """Track ``(frame, repeats)`` pairs (see :func:`resample_frames`) into a TrackedVideo.

    ``on_frame()`` is called once per decoded source frame (for progress bars);
    ``body(frame, repeats)`` (e.g. avatar.data.body.BodySampler), if given, gives each
    tracked frame's (len(BODY_JOINTS), 3) body rows, repeated like the face rows.
    """
    rows: list[np.ndarray] = []  # each (478, 3)
    body_rows: list[np.ndarray] = []  # each (len(BODY_JOINTS), 3)
    extra: list[int] = []
    change: list[float] = []
    previous = None
    missing = np.full((topo.NUM_LANDMARKS, 3), np.nan, np.float32)
    for frame, repeats in frames:
        on_frame()
        if repeats == 0:
            continue
        faces = tracker.detect(frame)
        thumb = _thumbnail(frame)
        step = 0.0 if previous is None else float(np.abs(thumb - previous).mean())
        previous = thumb
        rows.extend([faces[0].landmarks if faces else missing] * repeats)
        if body is not None:
            body_rows.extend([body(frame, repeats)] * repeats)
        extra.extend([extra_faces(faces)] * repeats)
        change.extend([step] + [0.0] * (repeats - 1))
    landmarks = np.stack(rows).astype(np.float32) if rows else np.zeros((0, topo.NUM_LANDMARKS, 3), np.float32)
    points = None
    if body is not None:
        points = np.stack(body_rows).astype(np.float32) if body_rows else missing_rows(0)
    return TrackedVideo(fps, size, landmarks, np.array(extra, int), np.array(change, np.float32), points)


def scene_cuts(change: np.ndarray, fps: float) -> list[int]:
    """Frames that start a new shot: a thumbnail change far above its neighbourhood's."""
    from scipy.ndimage import median_filter

    if len(change) < 2:
        return []
    window = max(3, round(CUT_WINDOW_SECONDS * fps) | 1)  # odd
    typical = np.maximum(median_filter(change, size=window, mode="nearest"), CUT_MEDIAN_FLOOR)
    cuts = (change > CUT_MIN_CHANGE) & (change > CUT_CONTRAST * typical)
    cuts[0] = False
    return [int(i) for i in np.flatnonzero(cuts)]


def missing_runs(tracked: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of frames without a face."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], (~tracked).astype(np.int8), [0]])))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2])]


def fill_gaps(landmarks: np.ndarray, tracked: np.ndarray) -> np.ndarray:
    """(T, 478, 3) with untracked frames linearly interpolated (held at the clip's ends)."""
    if tracked.all():
        return landmarks
    frames = np.arange(len(landmarks))
    known = np.flatnonzero(tracked)
    flat = landmarks.reshape(len(landmarks), -1)  # (T, 478*3)
    filled = np.empty_like(flat)
    for column in range(flat.shape[1]):
        filled[:, column] = np.interp(frames, known, flat[known, column])
    return filled.reshape(landmarks.shape)


def smooth_landmarks(landmarks: np.ndarray, sigma: float = LANDMARK_SMOOTH_FRAMES) -> np.ndarray:
    """(T, 478, 3) landmarks smoothed along time by a Gaussian of ``sigma`` frames (tracker
    jitter would make a re-rendered mouth shimmer); untracked frames stay NaN and do not
    pull their neighbours (they are bridged linearly before smoothing)."""
    from scipy.ndimage import gaussian_filter1d

    tracked = np.isfinite(landmarks[:, 0, 0])
    if tracked.sum() < 2:
        return landmarks
    filled = fill_gaps(landmarks.astype(np.float64), tracked)
    smooth = gaussian_filter1d(filled, sigma, axis=0, mode="nearest")
    smooth[~tracked] = np.nan
    return smooth.astype(np.float32)


def eye_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T,) mean lid gap of both eyes in face widths, from landmarks (T, 478, >=2)."""
    L = np.asarray(landmarks, np.float64)[..., :2]
    gap = np.mean([np.linalg.norm(L[:, up] - L[:, lo], axis=-1) for up, lo in EYE_MID_PAIRS], axis=0)
    width = np.linalg.norm(L[:, topo.CHEEK_L] - L[:, topo.CHEEK_R], axis=-1)
    return gap / np.maximum(width, 1e-6)


def head_angles(landmarks: np.ndarray) -> np.ndarray:
    """(T, 3) yaw, pitch, roll of each frame's face against the canonical template."""
    template, _ = face_template()
    return np.array([geometry.matrix_to_euler(geometry.fit_frame(p, template).rotation) for p in landmarks])


def choose_reference(landmarks: np.ndarray, eligible: np.ndarray) -> int:
    """The frame to build the clip's neutral face from, among the ``eligible`` (T,) ones:
    a typical head pose (near the median), eyes open as usual or more, mouth most closed."""
    candidates = np.flatnonzero(eligible)
    angles = head_angles(landmarks[candidates])  # (N, 3)
    distance = np.linalg.norm(angles - np.median(angles, axis=0), axis=1)
    near = candidates[distance <= np.quantile(distance, REFERENCE_POSE_QUANTILE)]
    eyes = eye_opening(landmarks[near])
    open_eyes = near[eyes >= np.median(eyes)]
    return int(open_eyes[np.argmin(mouth_opening(landmarks[open_eyes]))])
