"""Body tracking results: one frame (:class:`BodyFrame`) and one video (:class:`BodyTrack`).

Landmark layouts are MediaPipe's: 33 pose landmarks (``mp.solutions.pose.PoseLandmark``),
21 per hand (``mp.solutions.hands.HandLandmark``), 478 face-mesh points (with irises).
"Left"/"right" always mean the *person's* left/right, whatever side of the image it is on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatar.fileio import prefixed, prefixed_reader

NUM_POSE = 33  # MediaPipe pose landmarks
NUM_HAND = 21  # MediaPipe hand landmarks
NUM_FACE = 478  # MediaPipe face mesh with iris refinement
NUM_HANDS = 2
LEFT, RIGHT = 0, 1  # hand slots: the person's left hand, the person's right hand

# Pose landmark ids (PoseLandmark enum values; kept as plain ints so this module does not
# import MediaPipe). Upper body: face points, shoulders, elbows, wrists, hips.
NOSE = 0
LEFT_EYE, RIGHT_EYE = 2, 5
LEFT_EAR, RIGHT_EAR = 7, 8
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_ELBOW, RIGHT_ELBOW = 13, 14
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_HIP, RIGHT_HIP = 23, 24
UPPER_BODY = (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, LEFT_SHOULDER, RIGHT_SHOULDER,
              LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST, LEFT_HIP, RIGHT_HIP)
POSE_WRISTS = (LEFT_WRIST, RIGHT_WRIST)  # indexed by hand slot
# MotionSeq.upper_body joints (avatar.motion.types.BODY_JOINTS, same order) as pose ids.
BODY_JOINT_IDS = (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST,
                  LEFT_HIP, RIGHT_HIP)
# Hand keypoints blended in 2D (HandLandmark: wrist, thumb tip, index/middle/pinky tips and
# the middle knuckle): enough to place and orient a hand without 21 noisy points.
HAND_2D = (0, 4, 8, 9, 12, 20)
VISIBLE = 0.5  # pose landmark visibility above which a 2D keypoint counts as seen
NUM_POSE_2D = len(UPPER_BODY) + NUM_HANDS * len(HAND_2D)  # K of BodyTrack.pose_2d


def _pose_2d_bones() -> tuple[tuple[int, int], ...]:
    """Limbs as pairs of rows of BodyTrack.pose_2d: shoulders, arms, trunk, each hand's
    wrist -> thumb and knuckle -> finger tips (transitions spread motion along them)."""
    row = {landmark: k for k, landmark in enumerate(UPPER_BODY)}
    body = [(LEFT_SHOULDER, RIGHT_SHOULDER), (LEFT_SHOULDER, LEFT_ELBOW), (LEFT_ELBOW, LEFT_WRIST),
            (RIGHT_SHOULDER, RIGHT_ELBOW), (RIGHT_ELBOW, RIGHT_WRIST), (LEFT_SHOULDER, LEFT_HIP),
            (RIGHT_SHOULDER, RIGHT_HIP), (LEFT_HIP, RIGHT_HIP)]
    bones = [(row[a], row[b]) for a, b in body]
    hand = {landmark: k for k, landmark in enumerate(HAND_2D)}
    WRIST, THUMB_TIP, INDEX_TIP, MIDDLE_MCP, MIDDLE_TIP, PINKY_TIP = HAND_2D
    fingers = [(WRIST, THUMB_TIP), (WRIST, MIDDLE_MCP), (MIDDLE_MCP, INDEX_TIP), (MIDDLE_MCP, MIDDLE_TIP),
               (MIDDLE_MCP, PINKY_TIP)]
    for slot, wrist in enumerate(POSE_WRISTS):
        first = len(UPPER_BODY) + slot * len(HAND_2D)
        bones.append((row[wrist], first + hand[WRIST]))
        bones += [(first + hand[a], first + hand[b]) for a, b in fingers]
    return tuple(bones)


POSE_2D_BONES = _pose_2d_bones()

ARRAY_PREFIX = "body_"
ARRAY_KEYS = ("fps", "size", "world", "image", "hands", "hand_world", "masks", "face")


def _nan(*shape: int) -> np.ndarray:
    return np.full(shape, np.nan, np.float32)


@dataclass
class BodyFrame:
    """One frame's tracking results (NaN rows for anything not found)."""

    world: np.ndarray  # (33, 3) float32 pose world landmarks, metres, hip-centred
    image: np.ndarray  # (33, 3) float32 x, y pixels + visibility in [0, 1]
    hands: np.ndarray  # (2, 21, 3) float32 x, y pixels, z scaled like x; [LEFT, RIGHT]
    hand_world: np.ndarray  # (2, 21, 3) float32 metres around the hand centre
    mask: np.ndarray  # (mh, mw) uint8 person segmentation 0..255
    face: np.ndarray  # (478, 3) float32 face-mesh pixels

    @staticmethod
    def empty(mask_shape: tuple[int, int]) -> BodyFrame:
        """A frame where nothing was found."""
        return BodyFrame(_nan(NUM_POSE, 3), _nan(NUM_POSE, 3), _nan(NUM_HANDS, NUM_HAND, 3),
                         _nan(NUM_HANDS, NUM_HAND, 3), np.zeros(mask_shape, np.uint8),
                         _nan(NUM_FACE, 3))

    @property
    def has_person(self) -> bool:
        return bool(np.isfinite(self.world[0, 0]))


@dataclass
class BodyTrack:
    """Per-frame body tracking of one video at its own frame rate (T frames)."""

    fps: float
    size: tuple[int, int]  # (width, height) of the video
    world: np.ndarray  # (T, 33, 3) float32 pose world landmarks (m, hip-centred); NaN: no person
    image: np.ndarray  # (T, 33, 3) float32 pose landmarks: x, y px + visibility
    hands: np.ndarray  # (T, 2, 21, 3) float32 hand landmarks px; [:, LEFT], [:, RIGHT]; NaN: unseen
    hand_world: np.ndarray  # (T, 2, 21, 3) float32 hand world landmarks (m); NaN: unseen
    masks: np.ndarray  # (T, mh, mw) uint8 person segmentation, GESTURE.mask_width wide
    face: np.ndarray  # (T, 478, 3) float32 face mesh px; NaN: no face

    @property
    def num_frames(self) -> int:
        return len(self.world)

    @staticmethod
    def from_frames(frames: list[BodyFrame], fps: float, size: tuple[int, int],
                    mask_shape: tuple[int, int]) -> BodyTrack:
        """Stack per-frame results (an empty list gives a track of 0 frames)."""
        count = len(frames)
        rows = frames or [BodyFrame.empty(mask_shape)]  # shapes for an empty track
        arrays = {name: np.stack([getattr(f, name) for f in rows])[:count]
                  for name in ("world", "image", "hands", "hand_world", "mask", "face")}
        return BodyTrack(float(fps), (int(size[0]), int(size[1])), arrays["world"], arrays["image"],
                         arrays["hands"], arrays["hand_world"], arrays["mask"], arrays["face"])

    # -- helpers --------------------------------------------------------------------------
    def hand_boxes(self) -> np.ndarray:
        """(T, 2, 4) x0, y0, x1, y1 px of each hand's landmarks; NaN where unseen."""
        xy = self.hands[..., :2]  # (T, 2, 21, 2); a hand is seen with all its points or none
        boxes = np.concatenate([xy.min(axis=2), xy.max(axis=2)], axis=-1)  # (T, 2, 4), NaN propagates
        return boxes.astype(np.float32)

    def person_mask(self, i: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """(H, W) float32 in [0, 1]: frame ``i``'s person mask upsampled to ``size`` (W, H)
        (default: the video size)."""
        width, height = size or self.size
        mask = cv2.resize(self.masks[i], (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
        return mask.astype(np.float32) / 255.0

    def pose_2d(self, i: int) -> np.ndarray:
        """(NUM_POSE_2D, 2) px keypoints for pose blending: UPPER_BODY pose points, then HAND_2D
        of the left and right hand (13 + 2 * 6). Pose points below VISIBLE and unseen hands are
        NaN; a missing hand falls back to its pose wrist for every hand keypoint."""
        body = self.image[i, list(UPPER_BODY), :2].copy()  # (13, 2)
        body[self.image[i, list(UPPER_BODY), 2] < VISIBLE] = np.nan
        hands = []
        for slot, wrist in enumerate(POSE_WRISTS):
            points = self.hands[i, slot, list(HAND_2D), :2]  # (6, 2)
            if not np.isfinite(points).all():
                seen = self.image[i, wrist, 2] >= VISIBLE
                points = np.repeat(self.image[i, wrist:wrist + 1, :2] if seen else _nan(1, 2),
                                   len(HAND_2D), axis=0)
            hands.append(points)
        return np.concatenate([body, *hands]).astype(np.float32)

    # -- flat arrays (for .npz bundles) ------------------------------------------------
    def save_arrays(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays; keys (stable, prefixed "body_"):

        - body_fps: () float64 frames per second
        - body_size: (2,) int64 video width, height in px
        - body_world: (T, 33, 3) float32 pose world landmarks, metres, hip-centred, NaN = no person
        - body_image: (T, 33, 3) float32 pose landmarks x, y px + visibility
        - body_hands: (T, 2, 21, 3) float32 hand landmarks px ([:, 0] person's left, [:, 1] right)
        - body_hand_world: (T, 2, 21, 3) float32 hand world landmarks, metres
        - body_masks: (T, mh, mw) uint8 person segmentation 0..255 (mw = GESTURE.mask_width)
        - body_face: (T, 478, 3) float32 face-mesh landmarks px, NaN = no face
        """
        values = {"fps": np.float64(self.fps), "size": np.array(self.size, np.int64),
                  "world": self.world, "image": self.image, "hands": self.hands,
                  "hand_world": self.hand_world, "masks": self.masks, "face": self.face}
        return prefixed(ARRAY_PREFIX, {key: values[key] for key in ARRAY_KEYS})

    @staticmethod
    def from_arrays(arrays, where: str = "body track") -> BodyTrack:
        """Inverse of :meth:`save_arrays` (accepts a dict or an open ``np.load`` archive)."""
        get = prefixed_reader(arrays, ARRAY_PREFIX, ARRAY_KEYS, "body tracking", where)
        width, height = (int(v) for v in get("size"))
        return BodyTrack(float(get("fps")), (width, height), get("world").astype(np.float32),
                         get("image").astype(np.float32), get("hands").astype(np.float32),
                         get("hand_world").astype(np.float32), get("masks").astype(np.uint8),
                         get("face").astype(np.float32))
