"""The 15-D per-joint motion representation (TANGO App. A.3, after NeMF).

Per frame and joint: position relative to the root (3), velocity (3), 6-D rotation (6) and
angular velocity (3) -> (T, J, 15). Velocities are per second, so the numbers do not change
with the frame rate.

MediaPipe gives positions only, so rotations are built from the bone geometry (see
:func:`local_rotations`). Every body frame has columns (x, y, z) = (the person's left, up,
forward), right-handed; MediaPipe world axes are x right, y down, z away from the camera,
so a person facing the camera upright has the pelvis rotation diag(1, -1, -1).

Skeleton (parents in brackets): pelvis root [-]; hips [pelvis]; neck = shoulder midpoint
[pelvis]; nose, ears [neck]; shoulders [neck]; elbows [shoulder]; wrists [elbow]; per hand
index/pinky knuckles and thumb/index tips [wrist]. Hand points are attached at the pose
wrist: hand world landmarks are relative to the hand centre, so only their offsets from
the hand's own wrist are used.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatar.body import types as bt
from avatar.body.types import BodyTrack
from avatar.errors import AvatarError

GAP_SECONDS = 0.5  # fill_gaps default: interpolate gaps up to this long, leave longer ones NaN
FEATURES = 15  # position 3 + velocity 3 + rotation 6 + angular velocity 3 (TANGO App. A.3)
EPS = 1e-9  # guards normalisation of (near) zero vectors


class Joint(IntEnum):
    """Joints of the motion representation, in feature order (``JOINTS`` lists the names)."""

    PELVIS = 0  # midpoint of the hips: the root
    LEFT_HIP = 1
    RIGHT_HIP = 2
    NECK = 3  # midpoint of the shoulders
    NOSE = 4
    LEFT_EAR = 5
    RIGHT_EAR = 6
    LEFT_SHOULDER = 7
    RIGHT_SHOULDER = 8
    LEFT_ELBOW = 9
    RIGHT_ELBOW = 10
    LEFT_WRIST = 11
    RIGHT_WRIST = 12
    LEFT_INDEX_MCP = 13
    LEFT_PINKY_MCP = 14
    LEFT_THUMB_TIP = 15
    LEFT_INDEX_TIP = 16
    RIGHT_INDEX_MCP = 17
    RIGHT_PINKY_MCP = 18
    RIGHT_THUMB_TIP = 19
    RIGHT_INDEX_TIP = 20


JOINTS: tuple[str, ...] = tuple(j.name.lower() for j in Joint)
ROOT = Joint.PELVIS

# Pose landmarks copied straight into joints (PoseLandmark ids from avatar.body.types).
POSE_JOINTS = {Joint.LEFT_HIP: bt.LEFT_HIP, Joint.RIGHT_HIP: bt.RIGHT_HIP, Joint.NOSE: bt.NOSE,
               Joint.LEFT_EAR: bt.LEFT_EAR, Joint.RIGHT_EAR: bt.RIGHT_EAR,
               Joint.LEFT_SHOULDER: bt.LEFT_SHOULDER, Joint.RIGHT_SHOULDER: bt.RIGHT_SHOULDER,
               Joint.LEFT_ELBOW: bt.LEFT_ELBOW, Joint.RIGHT_ELBOW: bt.RIGHT_ELBOW,
               Joint.LEFT_WRIST: bt.LEFT_WRIST, Joint.RIGHT_WRIST: bt.RIGHT_WRIST}
# HandLandmark ids: WRIST 0, THUMB_TIP 4, INDEX_FINGER_MCP 5, INDEX_FINGER_TIP 8, PINKY_MCP 17.
HAND_WRIST = 0
HAND_POINTS = (5, 17, 4, 8)  # index MCP, pinky MCP, thumb tip, index tip (order of the joints)
HAND_JOINTS = ((Joint.LEFT_INDEX_MCP, Joint.LEFT_PINKY_MCP, Joint.LEFT_THUMB_TIP, Joint.LEFT_INDEX_TIP),
               (Joint.RIGHT_INDEX_MCP, Joint.RIGHT_PINKY_MCP, Joint.RIGHT_THUMB_TIP, Joint.RIGHT_INDEX_TIP))
# Without any hand detection, the pose's own hand points stand in (PoseLandmark LEFT/RIGHT_
# INDEX 19/20, PINKY 17/18, THUMB 21/22; all near the knuckles); the index tip is put one
# knuckle-to-wrist length beyond the index knuckle (a straight finger is about that long).
POSE_HAND = ((19, 17, 21), (20, 18, 22))  # (index, pinky, thumb) per hand slot
FINGER_TO_PALM = 1.0
# Hand world landmarks jitter (~1 cm per frame on ub01, palm-normal flips): their offsets are
# smoothed over about one frame at 30 fps, which halves the hand frame's p90 frame-to-frame
# turn there (46 -> 25 degrees) without blurring real hand motion much. The pose is
# already smoothed by MediaPipe.
HAND_SMOOTH_SECONDS = 1.0 / 30.0  # Gaussian sigma

# Rest direction of each upper arm in the chest frame (left, up, forward): down and out at
# 45 degrees. The swing rotation from it is singular only for the opposite direction (the
# arm raised across the head), which gestures do not reach.
ARM_REST = {Joint.LEFT_SHOULDER: np.array([1.0, -1.0, 0.0]) / np.sqrt(2.0),
            Joint.RIGHT_SHOULDER: np.array([-1.0, -1.0, 0.0]) / np.sqrt(2.0)}
ARM_CHAIN = ((Joint.LEFT_SHOULDER, Joint.LEFT_ELBOW, Joint.LEFT_WRIST),
             (Joint.RIGHT_SHOULDER, Joint.RIGHT_ELBOW, Joint.RIGHT_WRIST))


# -- gap filling --------------------------------------------------------------------------
def _runs(missing: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True in a (T,) bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], missing.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _fill_array(values: np.ndarray, max_gap: int | None) -> np.ndarray:
    """(T, ...) with NaN frames (any NaN in a frame's row) linearly interpolated, held at
    the ends; runs longer than ``max_gap`` frames stay NaN (None: fill every run)."""
    flat = np.asarray(values, np.float64).reshape(len(values), -1)  # (T, D)
    missing = np.isnan(flat).any(axis=1)  # (T,)
    known = np.flatnonzero(~missing)
    if known.size == 0 or not missing.any():
        return np.asarray(values).copy()
    fillable = missing.copy()
    if max_gap is not None:
        for start, end in _runs(missing):
            fillable[start:end] = end - start <= max_gap
    frames = np.flatnonzero(fillable)
    after = np.searchsorted(known, frames)  # index of the next known frame
    k0 = known[np.clip(after - 1, 0, known.size - 1)]  # before the first known: hold it
    k1 = known[np.clip(after, 0, known.size - 1)]  # after the last known: hold it
    w = np.clip((frames - k0) / np.maximum(k1 - k0, 1), 0.0, 1.0)[:, None]  # (F, 1); 0/1 at the ends
    out = flat.copy()
    out[frames] = (1.0 - w) * flat[k0] + w * flat[k1]
    return out.reshape(np.shape(values)).astype(np.asarray(values).dtype)


def fill_gaps(data, max_gap: int | None = None):
    """Interpolate frames that are NaN over short gaps; hold values at the clip's ends.

    ``data`` is a (T, ...) array (a frame is missing if any of its values is NaN; runs
    longer than ``max_gap`` frames stay NaN, None fills all) or a :class:`BodyTrack`, whose
    landmark arrays are filled per person / hand / face with ``max_gap`` defaulting to
    GAP_SECONDS (masks are kept as tracked).
    """
    if not isinstance(data, BodyTrack):
        return _fill_array(data, max_gap)
    gap = round(GAP_SECONDS * data.fps) if max_gap is None else max_gap
    hands = np.stack([_fill_array(data.hands[:, s], gap) for s in range(bt.NUM_HANDS)], axis=1)
    hand_world = np.stack([_fill_array(data.hand_world[:, s], gap) for s in range(bt.NUM_HANDS)], axis=1)
    return BodyTrack(data.fps, data.size, _fill_array(data.world, gap), _fill_array(data.image, gap),
                     hands, hand_world, data.masks, _fill_array(data.face, gap))


# -- positions ----------------------------------------------------------------------------
def _hand_offsets(track: BodyTrack, world: np.ndarray, slot: int) -> np.ndarray:
    """(T, 4, 3) hand joints relative to the pose wrist, metres: the hand detector's where it
    saw the hand (short gaps interpolated), the pose's own hand points elsewhere."""
    hand = track.hand_world[:, slot]  # (T, 21, 3)
    offsets = hand[:, list(HAND_POINTS)] - hand[:, HAND_WRIST:HAND_WRIST + 1]  # (T, 4, 3)
    offsets = _fill_array(offsets, round(GAP_SECONDS * track.fps))
    index, pinky, thumb = (world[:, p] - world[:, bt.POSE_WRISTS[slot]] for p in POSE_HAND[slot])
    fallback = np.stack([index, pinky, thumb, index * (1.0 + FINGER_TO_PALM)], axis=1)  # (T, 4, 3)
    unseen = np.isnan(offsets).any(axis=(1, 2))
    offsets[unseen] = fallback[unseen]
    return gaussian_filter1d(offsets, HAND_SMOOTH_SECONDS * track.fps, axis=0, mode="nearest")


def joint_positions(track: BodyTrack) -> np.ndarray:
    """(T, J, 3) float32 joint positions relative to the pelvis, metres, every gap filled
    (frames without a person are interpolated / held from the nearest tracked ones)."""
    if track.num_frames == 0 or np.isnan(track.world[:, 0, 0]).all():
        raise AvatarError("no person was found in the video", None,
                          "use footage where the upper body is clearly visible")
    world = _fill_array(track.world, None).astype(np.float64)  # (T, 33, 3)
    positions = np.zeros((track.num_frames, len(Joint), 3))  # (T, J, 3)
    positions[:, ROOT] = world[:, [bt.LEFT_HIP, bt.RIGHT_HIP]].mean(axis=1)
    positions[:, Joint.NECK] = world[:, [bt.LEFT_SHOULDER, bt.RIGHT_SHOULDER]].mean(axis=1)
    for joint, landmark in POSE_JOINTS.items():
        positions[:, joint] = world[:, landmark]
    for slot, joints in enumerate(HAND_JOINTS):
        wrist = world[:, bt.POSE_WRISTS[slot], None]  # (T, 1, 3)
        positions[:, list(joints)] = wrist + _hand_offsets(track, world, slot)
    return (positions - positions[:, ROOT:ROOT + 1]).astype(np.float32)


# -- rotations ----------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), EPS)


def orthonormal_frame(primary: np.ndarray, secondary: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    """(..., 3, 3) right-handed rotation by Gram-Schmidt: column ``axes[0]`` along
    ``primary``, column ``axes[1]`` along the part of ``secondary`` orthogonal to it."""
    p, s = axes
    e_p = _unit(primary)
    e_s = _unit(secondary - np.sum(secondary * e_p, -1, keepdims=True) * e_p)
    cyclic = (s - p) % 3 == 1  # (p, s) in order (0, 1), (1, 2), (2, 0)
    e_k = np.cross(e_p, e_s) if cyclic else np.cross(e_s, e_p)
    frame = np.empty(primary.shape[:-1] + (3, 3))
    frame[..., :, p], frame[..., :, s], frame[..., :, 3 - p - s] = e_p, e_s, e_k
    return frame


def min_rotation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) smallest rotation taking unit vectors ``u`` to ``v`` (Rodrigues; singular
    only for v = -u)."""
    k = np.cross(u, v)  # (..., 3) axis * sin
    c = np.sum(u * v, -1)[..., None, None]  # (..., 1, 1) cos
    K = np.zeros(k.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - np.swapaxes(K, -1, -2)
    return np.eye(3) + K + K @ K / np.maximum(1.0 + c, EPS)


def _transpose(r: np.ndarray) -> np.ndarray:
    return np.swapaxes(r, -1, -2)


def local_rotations(positions: np.ndarray) -> np.ndarray:
    """(T, J, 3, 3) each joint's rotation relative to its parent's frame (the pelvis: to the
    MediaPipe world axes), from positions (T, J, 3) alone:

    - pelvis: up = pelvis -> neck, left = right hip -> left hip (Gram-Schmidt, up first);
    - neck (chest): up as the pelvis, left = right shoulder -> left shoulder;
    - nose (head): left = right ear -> left ear, forward = ear midpoint -> nose;
    - shoulders / elbows: swing (smallest rotation) from the rest direction to the bone
      direction, in the parent's frame; the upper arm rests at ARM_REST, the forearm
      continues the upper arm. Twist about a bone is not observable and stays 0;
    - wrists: the hand frame (y = wrist -> knuckle midpoint, x = pinky -> index knuckle) in
      the forearm's frame; it holds the forearm twist the swings leave out;
    - hips, ears and hand points are leaves: identity.
    """
    P = np.asarray(positions, np.float64)
    T = len(P)
    local = np.broadcast_to(np.eye(3), (T, len(Joint), 3, 3)).copy()
    up = P[:, Joint.NECK] - P[:, ROOT]
    pelvis = orthonormal_frame(up, P[:, Joint.LEFT_HIP] - P[:, Joint.RIGHT_HIP], (1, 0))
    chest = orthonormal_frame(up, P[:, Joint.LEFT_SHOULDER] - P[:, Joint.RIGHT_SHOULDER], (1, 0))
    ears = (P[:, Joint.LEFT_EAR] + P[:, Joint.RIGHT_EAR]) / 2
    head = orthonormal_frame(P[:, Joint.LEFT_EAR] - P[:, Joint.RIGHT_EAR], P[:, Joint.NOSE] - ears, (0, 2))
    local[:, ROOT] = pelvis
    local[:, Joint.NECK] = _transpose(pelvis) @ chest
    local[:, Joint.NOSE] = _transpose(chest) @ head
    for slot, (shoulder, elbow, wrist) in enumerate(ARM_CHAIN):
        upper_dir = _unit(P[:, elbow] - P[:, shoulder])
        swing = min_rotation(np.broadcast_to(ARM_REST[shoulder], upper_dir.shape),
                             (_transpose(chest) @ upper_dir[..., None])[..., 0])
        upper = chest @ swing  # global frame of the upper arm
        fore_dir = (_transpose(upper) @ _unit(P[:, wrist] - P[:, elbow])[..., None])[..., 0]
        bend = min_rotation(np.broadcast_to(ARM_REST[shoulder], fore_dir.shape), fore_dir)
        local[:, shoulder], local[:, elbow] = swing, bend
        local[:, wrist] = _transpose(upper @ bend) @ _hand_frame(P, slot)
    return local


def _hand_frame(P: np.ndarray, slot: int) -> np.ndarray:
    """(T, 3, 3) global hand frame of one hand from its wrist and knuckles."""
    index_mcp, pinky_mcp = HAND_JOINTS[slot][0], HAND_JOINTS[slot][1]
    wrist = ARM_CHAIN[slot][2]
    knuckles = (P[:, index_mcp] + P[:, pinky_mcp]) / 2
    return orthonormal_frame(knuckles - P[:, wrist], P[:, index_mcp] - P[:, pinky_mcp], (1, 0))


def rotation_6d(rotations: np.ndarray) -> np.ndarray:
    """(..., 6): the first two columns of (..., 3, 3) rotations (Zhou et al. 2019), column 0
    then column 1."""
    return np.concatenate([rotations[..., :, 0], rotations[..., :, 1]], axis=-1)


def rotation_log(rotations: np.ndarray) -> np.ndarray:
    """(..., 3) axis * angle of (..., 3, 3) rotations with angles below pi."""
    trace = np.trace(rotations, axis1=-2, axis2=-1)
    angle = np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))  # (...,)
    skew = np.stack([rotations[..., 2, 1] - rotations[..., 1, 2], rotations[..., 0, 2] - rotations[..., 2, 0],
                     rotations[..., 1, 0] - rotations[..., 0, 1]], axis=-1) / 2.0  # axis * sin(angle)
    sin = np.sin(angle)
    scale = np.where(sin > EPS, angle / np.maximum(sin, EPS), 1.0)  # -> 1 as angle -> 0
    return skew * scale[..., None]


def angular_velocity(rotations: np.ndarray, fps: float) -> np.ndarray:
    """(T, ..., 3) rad/s from (T, ..., 3, 3) rotations: axis-angle of R[t+1] R[t-1]^T over two
    frames (central difference, one-sided at the ends), in the parent's frame."""
    if len(rotations) < 2:
        return np.zeros(rotations.shape[:-1])
    ahead = np.concatenate([rotations[1:], rotations[-1:]])
    behind = np.concatenate([rotations[:1], rotations[:-1]])
    steps = np.full(len(rotations), 2.0)
    steps[0] = steps[-1] = 1.0
    steps = steps.reshape((-1,) + (1,) * (rotations.ndim - 2))
    return rotation_log(ahead @ _transpose(behind)) * fps / steps


def joint_velocities(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T, J, 3) units/s: central differences (one-sided at the ends)."""
    if len(positions) < 2:
        return np.zeros_like(positions, dtype=np.float64)
    return np.gradient(np.asarray(positions, np.float64), axis=0) * fps


def joint_features(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T, J, 15) float32 (TANGO App. A.3): root-relative position, velocity (/s), 6-D local
    rotation, angular velocity (rad/s)."""
    P = np.asarray(positions, np.float64)
    relative = P - P[:, ROOT:ROOT + 1]  # (T, J, 3)
    rotations = local_rotations(relative)  # (T, J, 3, 3)
    return np.concatenate([relative, joint_velocities(relative, fps), rotation_6d(rotations),
                           angular_velocity(rotations, fps)], axis=-1).astype(np.float32)
