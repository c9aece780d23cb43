"""MediaPipe body tracking (TANGO §3.1 inputs): pose, hands, person mask and face mesh.

:class:`BodyTracker` processes one RGB frame at a time; :func:`track_video` streams a video
through it (constant memory apart from the per-frame arrays); :class:`PoseTracker` is the
pose model alone, for ``avatar prepare``'s body track (avatar.data.body). MediaPipe is
imported lazily: importing avatar must not load models.

Speed (2-core CPU, 1080x1920 frames): the pose (with its person segmentation) runs on a
copy whose longest side is PROCESS_SIDE px (it resizes to 256 px inputs internally anyway);
hands and the face mesh run on the full frame, where their tracking crops keep fingers and
lips sharp (their cost is the models, not the frame size).

Person mask: the pose model's own segmentation (``enable_segmentation``), not the selfie
segmenter. Compared on ub01/ub06 frames it follows the tracked person only (the selfie
models also take in sofa cushions and the desk in front of a presenter), and it is the
cheaper of the two: about 5 ms CPU per frame on top of the pose against 8 ms for the
selfie model (1080x1920 frames at PROCESS_SIDE).

Measured CPU per 1080x1920 frame (all threads, ub01): decode 6 ms, pose+mask 37, hands 31,
face mesh 7; about 85 ms in all (benchmarks/bench_body.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from avatar.body.types import LEFT, NOSE, NUM_HANDS, NUM_POSE, POSE_WRISTS, RIGHT, BodyFrame, BodyTrack
from avatar.config import GESTURE
from avatar.errors import AvatarError
from avatar.face.tracker import FaceObservation, FaceTracker
from avatar.native import quiet_stderr
from avatar.video.reader import iter_frames, probe

Log = Callable[[str], None]

POSE_COMPLEXITY = 1  # the only pose model shipped with the mediapipe wheel (0 and 2 download)
MAX_HANDS = NUM_HANDS
MIN_CONFIDENCE = 0.5  # MediaPipe's default detection / tracking confidence
PROCESS_SIDE = 960  # px longest side of the copy the pose sees (half of 1920)
WARM_UP_SIDE = 64  # px side of the blank frame the models are opened with
HANDEDNESS_MIRRORED = True  # MediaPipe labels hands as if the image were a mirrored selfie


class BodyTracker:
    """Pose + hands + person segmentation + face mesh on RGB frames.

    ``static=False`` (video) turns on MediaPipe's temporal tracking and landmark smoothing;
    ``static=True`` treats every frame as an unrelated photo.
    """

    def __init__(self, static: bool = False, mask_width: int = GESTURE.mask_width):
        with quiet_stderr():
            import mediapipe as mp  # heavy import, deferred until a tracker is made

            solutions = mp.solutions
            self._pose = solutions.pose.Pose(
                static_image_mode=static, model_complexity=POSE_COMPLEXITY,
                smooth_landmarks=not static, enable_segmentation=True, smooth_segmentation=not static,
                min_detection_confidence=MIN_CONFIDENCE, min_tracking_confidence=MIN_CONFIDENCE)
            self._hands = solutions.hands.Hands(
                static_image_mode=static, max_num_hands=MAX_HANDS,
                min_detection_confidence=MIN_CONFIDENCE, min_tracking_confidence=MIN_CONFIDENCE)
            self._face = FaceTracker(static=static, max_faces=1)
            self._warm_up()
        self.mask_width = int(mask_width)
        # CPU seconds (all threads) spent per model: steadier than wall time on a busy machine
        self.timings: dict[str, float] = {"pose+mask": 0.0, "hands": 0.0, "face": 0.0}

    def _warm_up(self) -> None:
        """Run every model once on a blank frame: MediaPipe opens its graphs on worker threads
        and logs from there, so this keeps those logs inside the caller's quiet_stderr."""
        blank = np.zeros((WARM_UP_SIDE, WARM_UP_SIDE, 3), np.uint8)
        self._pose.process(blank)
        self._hands.process(blank)
        self._face.detect(blank)  # nothing is found, so no tracking state is left behind

    def close(self) -> None:
        with quiet_stderr():
            for model in (self._pose, self._hands, self._face):
                model.close()

    def __enter__(self) -> BodyTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def mask_shape(self, size: tuple[int, int]) -> tuple[int, int]:
        """(mh, mw) of the stored person mask for a frame of ``size`` (W, H)."""
        width, height = size
        return max(1, round(height * self.mask_width / width)), self.mask_width

    def process(self, frame: np.ndarray) -> BodyFrame:
        """One RGB uint8 (H, W, 3) frame -> its :class:`BodyFrame` (NaN where nothing found)."""
        frame = np.ascontiguousarray(frame)
        height, width = frame.shape[:2]
        result = BodyFrame.empty(self.mask_shape((width, height)))
        small = _downscale(frame, PROCESS_SIDE)
        with quiet_stderr():
            self._timed("pose+mask", self._run_pose, small, (width, height), result)
            self._timed("hands", self._run_hands, frame, result)
            self._timed("face", self._run_face, frame, result)
        return result

    def _timed(self, name: str, step, *args) -> None:
        start = time.process_time()
        step(*args)
        self.timings[name] += time.process_time() - start

    # -- models ---------------------------------------------------------------------------
    def _run_pose(self, small: np.ndarray, size: tuple[int, int], out: BodyFrame) -> None:
        found = self._pose.process(small)
        if found.pose_landmarks is None or found.pose_world_landmarks is None:
            return
        width, height = size
        out.image[:] = [(p.x * width, p.y * height, p.visibility) for p in found.pose_landmarks.landmark]
        out.world[:] = [(p.x, p.y, p.z) for p in found.pose_world_landmarks.landmark]
        if found.segmentation_mask is not None:
            out.mask[:] = _small_mask(found.segmentation_mask, out.mask.shape)

    def _run_hands(self, frame: np.ndarray, out: BodyFrame) -> None:
        found = self._hands.process(frame)
        if not found.multi_hand_landmarks:
            return
        height, width = frame.shape[:2]
        image = [np.array([(p.x * width, p.y * height, p.z * width) for p in h.landmark], np.float32)
                 for h in found.multi_hand_landmarks]  # each (21, 3)
        world = [np.array([(p.x, p.y, p.z) for p in h.landmark], np.float32)
                 for h in found.multi_hand_world_landmarks]
        labels = [h.classification[0].label for h in found.multi_handedness]
        for detection, slot in enumerate(assign_hands([h[0, :2] for h in image], labels, out.image)):
            out.hands[slot] = image[detection]
            out.hand_world[slot] = world[detection]

    def _run_face(self, frame: np.ndarray, out: BodyFrame) -> None:
        faces = self._face.detect(frame)
        if faces:
            out.face[:] = _person_face(faces, out.image[NOSE, :2]).landmarks


class PoseTracker:
    """The pose model alone (no hands, face mesh or segmentation): the cheap body track of
    ``avatar prepare`` (avatar.data.body). Same model, confidences and PROCESS_SIDE copy as
    :class:`BodyTracker`; about 21 ms CPU per frame on 2 cores, whatever the frame size."""

    def __init__(self, static: bool = False):
        with quiet_stderr():
            import mediapipe as mp  # heavy import, deferred until a tracker is made

            self._pose = mp.solutions.pose.Pose(
                static_image_mode=static, model_complexity=POSE_COMPLEXITY, smooth_landmarks=not static,
                enable_segmentation=False, min_detection_confidence=MIN_CONFIDENCE,
                min_tracking_confidence=MIN_CONFIDENCE)
            self._pose.process(np.zeros((WARM_UP_SIDE, WARM_UP_SIDE, 3), np.uint8))  # logs stay quiet
        self.seconds = 0.0  # CPU seconds (all threads) spent in process()

    def close(self) -> None:
        with quiet_stderr():
            self._pose.close()

    def __enter__(self) -> PoseTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def process(self, frame: np.ndarray) -> np.ndarray:
        """(33, 3) float32 pose landmarks of an RGB uint8 (H, W, 3) frame: x, y in pixels of
        ``frame`` + MediaPipe's visibility; all NaN when no person is found."""
        start = time.process_time()
        height, width = frame.shape[:2]
        out = np.full((NUM_POSE, 3), np.nan, np.float32)
        with quiet_stderr():
            found = self._pose.process(np.ascontiguousarray(_downscale(frame, PROCESS_SIDE)))
        if found.pose_landmarks is not None:
            out[:] = [(p.x * width, p.y * height, p.visibility) for p in found.pose_landmarks.landmark]
        self.seconds += time.process_time() - start
        return out


def _downscale(frame: np.ndarray, side: int) -> np.ndarray:
    """The frame with its longest side at most ``side`` px (area-averaged)."""
    height, width = frame.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0:
        return frame
    return cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def _small_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(mh, mw) uint8 0..255 from MediaPipe's (h, w) float32 [0, 1] segmentation."""
    mh, mw = shape
    mask = cv2.resize(mask, (mw, mh), interpolation=cv2.INTER_AREA)
    return np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _label_slot(label: str) -> int:
    """Hand slot from MediaPipe's handedness label (which assumes a mirrored selfie)."""
    is_left = label == "Left"
    if HANDEDNESS_MIRRORED:
        is_left = not is_left
    return LEFT if is_left else RIGHT


def assign_hands(wrists: list[np.ndarray], labels: list[str], pose_image: np.ndarray) -> list[int]:
    """Slot (LEFT / RIGHT) of each detected hand: nearest pose wrist when the pose was found,
    else MediaPipe's handedness. Two hands always get different slots."""
    pose_wrists = pose_image[list(POSE_WRISTS), :2]  # (2, 2) px
    if np.isfinite(pose_wrists).all():
        cost = np.array([[np.linalg.norm(w - p) for p in pose_wrists] for w in wrists])  # (n, 2)
    else:
        cost = np.array([[0.0 if _label_slot(label) == s else 1.0 for s in (LEFT, RIGHT)]
                         for label in labels])
    if len(wrists) == 1:
        return [int(np.argmin(cost[0]))]
    straight = cost[0, LEFT] + cost[1, RIGHT]
    crossed = cost[0, RIGHT] + cost[1, LEFT]
    return [LEFT, RIGHT] if straight <= crossed else [RIGHT, LEFT]


def _person_face(faces: list[FaceObservation], nose: np.ndarray) -> FaceObservation:
    """The face around the pose's nose, else the largest (faces come largest first)."""
    if np.isfinite(nose).all():
        for face in faces:
            x0, y0, x1, y1 = face.box
            if x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1:
                return face
    return faces[0]


def track_video(path: str | os.PathLike, progress: bool = True, log: Log = print) -> BodyTrack:
    """Track every frame of a video at its own frame rate (frames decoded one at a time)."""
    from tqdm import tqdm

    path = Path(path)
    info = probe(path)
    if not info.fps > 0:
        raise AvatarError("the video has no frame rate", str(path), "re-encode it, e.g. with ffmpeg -r 30")
    frames: list[BodyFrame] = []
    start = time.perf_counter()
    with BodyTracker(static=False) as tracker, \
            tqdm(total=info.num_frames, desc=path.stem, unit="frame", disable=not progress,
                 leave=False, mininterval=0.5) as bar:
        for frame in iter_frames(path):
            frames.append(tracker.process(frame))
            bar.update()
        mask_shape = tracker.mask_shape((info.width, info.height))
        timings = dict(tracker.timings)
    track = BodyTrack.from_frames(frames, info.fps, (info.width, info.height), mask_shape)
    log(_summary(path.stem, track, timings, time.perf_counter() - start))
    return track


def _summary(name: str, track: BodyTrack, timings: dict[str, float], seconds: float) -> str:
    """One log line: frames, detection rates and ms per frame per model."""
    count = max(track.num_frames, 1)
    person = np.isfinite(track.world[:, 0, 0]).mean() if track.num_frames else 0.0
    hands = np.isfinite(track.hands[:, :, 0, 0]).mean(0) if track.num_frames else np.zeros(NUM_HANDS)
    face = np.isfinite(track.face[:, 0, 0]).mean() if track.num_frames else 0.0
    models = ", ".join(f"{k} {1000 * v / count:.0f}" for k, v in timings.items())  # CPU ms
    return (f"{name}: {track.num_frames} frames, person {person:.0%}, left hand {hands[LEFT]:.0%}, "
            f"right hand {hands[RIGHT]:.0%}, face {face:.0%}; {1000 * seconds / count:.0f} ms/frame "
            f"(CPU: {models} ms)")
