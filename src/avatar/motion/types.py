"""MotionFrame / MotionSeq: the shared motion representation (METHODS.md, "Motion representation").

A MotionSeq is stored as arrays over time (struct of arrays) so generators and metrics work
on whole curves; ``seq[i]`` gives a :class:`MotionFrame` with the same named fields.
Facial actions are addressed by name (``seq.action("jawOpen")``), never by column number.

Conventions (all relative to the source photo / first frame of the source video):
- rotation: yaw, pitch, roll in radians. yaw > 0 turns the face toward the image's right,
  pitch > 0 tilts the chin up, roll > 0 tilts the head clockwise on screen.
- translation: (x, y) in units of the source face width, image axes (y down).
- scale: multiplicative head size, 1 = as in the source (head distance control).
- actions: coefficients of the named facial-action basis (avatar.face.actions), 0 = rest,
  1 = full action; a few may go slightly below 0 or above 1.
- gaze: shared eye direction (x, y) in radians, x > 0 toward the image's right, y > 0 up.
- upper_body: 2D displacement of each of BODY_JOINTS from where it is in the source (the
  reference pose: pose_i = pose_ref + delta_i, VLOGGER §3.1), in source face widths, image
  axes (x right, y down); all zeros = the source's own pose.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

# The facial-action basis, in column order. Each is a deformation field on the canonical
# face mesh, defined in avatar.face.actions; ARKit names where ARKit has the action.
ACTIONS: tuple[str, ...] = (
    "jawOpen",  # jaw rotates down, mouth opens (a, aa)
    "mouthClose",  # lips meet and press (p, b, m) even with the jaw slightly open
    "mouthFunnel",  # lips pushed forward, rounded open (oo in "who", sh, ch)
    "mouthPucker",  # lips pursed narrow (w, oo)
    "mouthRollLower",  # lower lip rolls up under the upper teeth (f, v)
    "mouthSmileL",  # corners up and out (L/R are the subject's left/right)
    "mouthSmileR",
    "mouthStretchL",  # corners pulled sideways (ee, i)
    "mouthStretchR",
    "mouthFrownL",  # corners down
    "mouthFrownR",
    "upperLipRaise",  # upper lip up, showing upper teeth
    "lowerLipDown",  # lower lip down, showing lower teeth
    "browInnerUp",
    "browDownL",
    "browDownR",
    "browOuterUpL",
    "browOuterUpR",
    "eyeBlinkL",  # upper eyelid closes over the eye
    "eyeBlinkR",
    "eyeSquintL",  # lower lid up, eye narrows
    "eyeSquintR",
    "eyeWideL",  # upper lid up
    "eyeWideR",
)
ACTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(ACTIONS)}
BLINK_ACTIONS = ("eyeBlinkL", "eyeBlinkR")
# Upper-body joints of MotionSeq.upper_body, in column order (L/R: the person's left/right;
# avatar.body.types.BODY_JOINT_IDS maps them to MediaPipe pose landmarks).
BODY_JOINTS: tuple[str, ...] = ("leftShoulder", "rightShoulder", "leftElbow", "rightElbow",
                                "leftWrist", "rightWrist", "leftHip", "rightHip")


def action_column(name: str) -> int:
    try:
        return ACTION_INDEX[name]
    except KeyError:
        raise KeyError(f"unknown facial action {name!r}; known: {', '.join(ACTIONS)}") from None


@dataclass
class MotionFrame:
    """One frame of motion (a view of one row of a MotionSeq)."""

    rotation: np.ndarray  # (3,) yaw, pitch, roll
    translation: np.ndarray  # (2,)
    scale: float
    actions: np.ndarray  # (A,)
    gaze: np.ndarray  # (2,)
    upper_body: np.ndarray | None = None  # (len(BODY_JOINTS), 2) face widths, or None

    def action(self, name: str) -> float:
        return float(self.actions[action_column(name)])

    @property
    def blink(self) -> float:
        return 0.5 * (self.action("eyeBlinkL") + self.action("eyeBlinkR"))


@dataclass
class MotionSeq:
    """Motion over T frames at ``fps``."""

    fps: float
    rotation: np.ndarray  # (T, 3) yaw, pitch, roll in radians
    translation: np.ndarray  # (T, 2) in source face widths
    scale: np.ndarray  # (T,)
    actions: np.ndarray  # (T, A) in ACTIONS order
    gaze: np.ndarray  # (T, 2) radians
    # Optional body (issue: TANGO). World joints (T, 33, 3) and hands (T, 2, 21, 3).
    body: np.ndarray | None = None
    hands: np.ndarray | None = None
    # Optional upper-body motion (vlogger): (T, len(BODY_JOINTS), 2) displacement from the
    # reference pose in source face widths, image axes.
    upper_body: np.ndarray | None = None
    action_names: tuple[str, ...] = field(default=ACTIONS)

    def __post_init__(self):
        T = len(self.rotation)
        self.rotation = np.asarray(self.rotation, np.float32).reshape(T, 3)
        self.translation = np.asarray(self.translation, np.float32).reshape(T, 2)
        self.scale = np.asarray(self.scale, np.float32).reshape(T)
        self.actions = np.asarray(self.actions, np.float32).reshape(T, len(self.action_names))
        self.gaze = np.asarray(self.gaze, np.float32).reshape(T, 2)
        if self.upper_body is not None:
            self.upper_body = np.asarray(self.upper_body, np.float32).reshape(T, len(BODY_JOINTS), 2)
        if tuple(self.action_names) != ACTIONS:
            raise ValueError("MotionSeq action columns differ from this engine's ACTIONS; "
                             "load it through avatar.motion.io, which maps names")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def neutral(cls, num_frames: int, fps: float) -> "MotionSeq":
        """T frames of the source at rest: no rotation, no actions, gaze at the camera."""
        T = int(num_frames)
        return cls(
            fps=fps,
            rotation=np.zeros((T, 3), np.float32),
            translation=np.zeros((T, 2), np.float32),
            scale=np.ones(T, np.float32),
            actions=np.zeros((T, len(ACTIONS)), np.float32),
            gaze=np.zeros((T, 2), np.float32),
        )

    # -- access -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rotation)

    @property
    def num_frames(self) -> int:
        return len(self)

    @property
    def duration(self) -> float:
        return len(self) / self.fps

    def action(self, name: str) -> np.ndarray:
        """The curve of one facial action, (T,). A view: writing to it edits the sequence."""
        return self.actions[:, action_column(name)]

    def set_action(self, name: str, values) -> None:
        self.actions[:, action_column(name)] = values

    @property
    def blink(self) -> np.ndarray:
        return 0.5 * (self.action("eyeBlinkL") + self.action("eyeBlinkR"))

    def __getitem__(self, i: int) -> MotionFrame:
        return MotionFrame(
            rotation=self.rotation[i],
            translation=self.translation[i],
            scale=float(self.scale[i]),
            actions=self.actions[i],
            gaze=self.gaze[i],
            upper_body=None if self.upper_body is None else self.upper_body[i],
        )

    def slice(self, start: int, stop: int) -> "MotionSeq":
        return replace(
            self,
            **{f.name: getattr(self, f.name)[start:stop] for f in fields(self)
               if isinstance(getattr(self, f.name), np.ndarray)},
        )

    def copy(self) -> "MotionSeq":
        return replace(
            self,
            **{f.name: getattr(self, f.name).copy() for f in fields(self)
               if isinstance(getattr(self, f.name), np.ndarray)},
        )
