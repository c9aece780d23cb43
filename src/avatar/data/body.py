"""The upper-body track of a prepared clip (``Clip.body_points``) and its motion.

``avatar prepare`` runs the MediaPipe pose model alone (avatar.body.tracker.PoseTracker)
in its single pass over the frames, when the video shows an upper body (``--body auto``,
the default), and keeps for every clip the BODY_JOINTS (shoulders, elbows, wrists, hips)
in pixels + visibility. :func:`upper_body_deltas` turns that track into the motion the
vlogger generator learns (``MotionSeq.upper_body``): each joint's displacement from the
clip's reference pose, in face widths.

"Shows a body": both shoulders seen (visibility >= VISIBLE and at least SHOULDER_MARGIN
inside the frame) in at least MIN_SHOULDER_SHARE of a shot's frames. The margin matters:
on face-only crops (VoxCeleb 224x224, GRID) MediaPipe still places the shoulders, at or
beyond the bottom edge of the frame, with visibility 0.8-0.95.

In ``auto`` mode the pose is not run on every frame of a video without a body: after
LOOK_SECONDS without seen shoulders it only looks once every PROBE_SECONDS until it sees
them again (those skipped frames are NaN rows, and count as frames without shoulders).
The pose costs ~20 ms CPU per frame, about 3x the face mesh: on 2 cores ``auto`` added
12-21 ms per frame to videos that show a body and 0-2.5 s per face-only video (``yes``
about 7 s on a 12 s one).
"""

from __future__ import annotations

import numpy as np

from avatar.body.types import BODY_JOINT_IDS, LEFT_SHOULDER, RIGHT_SHOULDER, VISIBLE
from avatar.motion.types import BODY_JOINTS

AUTO, YES, NO = "auto", "yes", "no"  # --body: decide per shot / always / never
BODY_MODES = (AUTO, YES, NO)
SHOULDER_MARGIN = 0.05  # share of the frame width / height a seen shoulder stays inside the edges
MIN_SHOULDER_SHARE = 0.5  # a shot shows a body when both shoulders are seen in this share of frames
LOOK_SECONDS = 2.0  # auto: seconds without seen shoulders after which the pose only probes ...
PROBE_SECONDS = 1.0  # ... once every this many seconds
NUM_JOINTS = len(BODY_JOINTS)
SHOULDERS = (BODY_JOINT_IDS.index(LEFT_SHOULDER), BODY_JOINT_IDS.index(RIGHT_SHOULDER))  # columns

assert NUM_JOINTS == len(BODY_JOINT_IDS)


def missing_rows(count: int = 1) -> np.ndarray:
    """(count, NUM_JOINTS, 3) float32 NaN: frames where no person was found (or looked for)."""
    return np.full((count, NUM_JOINTS, 3), np.nan, np.float32)


def joint_rows(pose: np.ndarray) -> np.ndarray:
    """(NUM_JOINTS, 3) float32 BODY_JOINTS rows of a (33, 3) MediaPipe pose (x, y px, visibility)."""
    return np.asarray(pose, np.float32)[list(BODY_JOINT_IDS)]


def seen_joints(points: np.ndarray, size: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """(..., NUM_JOINTS) bool: joints of ``points`` (..., NUM_JOINTS, 3) that are seen: found,
    visibility >= VISIBLE and inside the (width, height) frame by at least ``margin`` of its
    width / height. MediaPipe's visibility alone does not do: it stays high for joints it
    places outside the frame."""
    points = np.asarray(points, np.float64)
    width, height = size
    x, y, visibility = points[..., 0], points[..., 1], points[..., 2]
    with np.errstate(invalid="ignore"):  # NaN compares False: not seen
        inside = ((x >= margin * width) & (x <= (1 - margin) * width)
                  & (y >= margin * height) & (y <= (1 - margin) * height))
        return inside & (visibility >= VISIBLE)


def shoulders_seen(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T,) bool: frames of ``points`` (T, NUM_JOINTS, 3) where both shoulders are seen,
    SHOULDER_MARGIN inside the frame."""
    return seen_joints(np.asarray(points)[:, list(SHOULDERS)], size, SHOULDER_MARGIN).all(axis=1)


def shoulder_share(points: np.ndarray, size: tuple[int, int]) -> float:
    """Share of the frames of ``points`` (T, NUM_JOINTS, 3) with both shoulders seen (0 for T = 0)."""
    seen = shoulders_seen(points, size)
    return float(seen.mean()) if len(seen) else 0.0


def shows_body(points: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether a shot's body track (T, NUM_JOINTS, 3) shows an upper body (``--body auto``)."""
    return shoulder_share(points, size) >= MIN_SHOULDER_SHARE


class BodySampler:
    """Per-frame BODY_JOINTS rows from a pose tracker (``process(frame) -> (33, 3)``).

    ``mode`` YES runs the pose on every frame; AUTO stops looking at every frame after
    LOOK_SECONDS without seen shoulders and probes once every PROBE_SECONDS instead.
    Frame counts are at the dataset frame rate ``fps`` (``repeats`` per source frame).
    """

    def __init__(self, tracker, fps: float, mode: str = AUTO):
        if mode not in (AUTO, YES):
            raise ValueError(f"BodySampler mode must be {AUTO!r} or {YES!r}, not {mode!r}")
        self.tracker, self.mode = tracker, mode
        self._look = max(1, round(LOOK_SECONDS * fps))
        self._probe = max(1, round(PROBE_SECONDS * fps))
        self._unseen = 0  # frames since both shoulders were last seen
        self._wait = 0  # frames to skip before the next probe
        self.processed = self.skipped = 0  # frames (at fps) the pose ran on / did not

    def __call__(self, frame: np.ndarray, repeats: int = 1) -> np.ndarray:
        """(NUM_JOINTS, 3) rows for a frame shown ``repeats`` times (NaN: no person, or skipped)."""
        if self.mode == AUTO and self._unseen >= self._look and self._wait > 0:
            self._wait -= repeats
            self.skipped += repeats
            return missing_rows()[0]
        rows = joint_rows(self.tracker.process(frame))
        height, width = frame.shape[:2]
        self._unseen = 0 if shoulders_seen(rows[None], (width, height))[0] else self._unseen + repeats
        self._wait = self._probe - repeats
        self.processed += repeats
        return rows


# -- motion -------------------------------------------------------------------------------
def reference_pose(clip) -> np.ndarray | None:
    """(NUM_JOINTS, 2) float32 reference pose in pixels (NaN for a joint never seen), None
    without a body track: ``clip.body_reference`` when set (slices carry their whole clip's),
    else each joint where it is at ``clip.reference.frame_index`` if seen there, else the
    median of its seen positions in the clip (seen: see :func:`upper_body_deltas`)."""
    points = getattr(clip, "body_points", None)
    if points is None:
        return None
    if getattr(clip, "body_reference", None) is not None:
        return np.asarray(clip.body_reference, np.float32).reshape(NUM_JOINTS, 2)
    points = np.asarray(points, np.float64)
    seen = seen_joints(points, clip.video_size)  # (T, J)
    frame = int(clip.reference.frame_index)
    pose = np.full((NUM_JOINTS, 2), np.nan)
    for joint in range(NUM_JOINTS):
        if 0 <= frame < len(points) and seen[frame, joint]:
            pose[joint] = points[frame, joint, :2]
        elif seen[:, joint].any():
            pose[joint] = np.median(points[seen[:, joint], joint, :2], axis=0)
    return pose.astype(np.float32)


def upper_body_deltas(clip) -> np.ndarray | None:
    """(T, NUM_JOINTS, 2) float32 upper-body motion of a clip, for ``MotionSeq.upper_body``;
    None when the clip has no body track (``clip.body_points`` is None).

    Each of BODY_JOINTS (shoulders, elbows, wrists, hips: avatar.motion.types) as its
    displacement from the reference pose (VLOGGER: pose_i = pose_ref + delta_i), in face
    widths of the clip's reference face (pixels / ``clip.reference.scale``, which is pixels
    per face width), image axes (x right, y down).

    Reference pose (:func:`reference_pose`): the joint's position at the clip's reference
    frame (``clip.reference.frame_index``, the frame the face motion is relative to) if it
    is seen there, else the median of its seen positions in the clip. A slice of a clip
    (``Clip.slice``, ``Clip.split``) keeps its whole clip's reference pose.

    NaN where the joint is not seen: no person found, visibility < VISIBLE, or outside the
    video frame (MediaPipe keeps a high visibility for joints it guesses beyond the edge);
    also everywhere for a joint never seen in the clip.
    """
    points = getattr(clip, "body_points", None)
    if points is None:
        return None
    points = np.asarray(points, np.float64)
    pose = reference_pose(clip).astype(np.float64)
    deltas = (points[..., :2] - pose[None]) / float(clip.reference.scale)
    deltas[~seen_joints(points, clip.video_size)] = np.nan
    return deltas.astype(np.float32)
