"""One prepared clip of real video, and the one place where clips are serialised.

A :class:`Clip` is what ``avatar prepare`` makes of one shot of a video: the face mesh
per frame (pixels), the motion fitted to it (relative to the clip's reference frame),
audio features, phone timings and voice activity at the video frame rate, the time
ranges held out for validation and, for videos that show an upper body, the body track
(shoulders, elbows, wrists, hips; avatar.data.body). The file format is documented in
docs/dataset-format.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from avatar import __version__
from avatar.audio.types import AudioFeatures, Phone
from avatar.data.body import NUM_JOINTS, reference_pose, upper_body_deltas
from avatar.errors import AvatarError
from avatar.face.actions import build_basis
from avatar.face.geometry import HeadFrame
from avatar.face.model import FaceModel
from avatar.fileio import CONTENT_ERRORS, atomic_write, open_archive
from avatar.motion.io import motion_from_arrays
from avatar.motion.types import ACTIONS, MotionSeq

__all__ = ["Clip", "ReferenceFace", "save_clip", "load_clip", "read_clip_meta", "clip_path",
           "ranges_mask", "FORMAT", "VERSION", "TRAIN", "VALIDATION"]

FORMAT = "avatar-clip"
VERSION = 1
SUFFIX = ".npz"
TRAIN, VALIDATION = "train", "val"
# Landmarks are rounded to 1/64 px before saving: far below tracking noise, and the zeroed
# low mantissa bits let the archive compress them ~2x (exact in float32 below 131072 px).
LANDMARK_STEPS_PER_PIXEL = 64
MOTION_ARRAYS = ("rotation", "translation", "scale", "actions", "gaze")
FEATURE_ARRAYS = ("energy", "pitch", "onset", "vad", "mel")
FRAME_ARRAYS = ("landmarks", "tracked", "fit_residual")  # per-frame arrays of the Clip itself


@dataclass
class ReferenceFace:
    """The minimal data of the clip's reference FaceModel: enough to re-render or re-fit.

    The action basis is not stored: it is rebuilt from ``neutral`` (avatar.face.actions).
    """

    frame_index: int  # the clip frame the face was taken from
    neutral: np.ndarray  # (478, 3) canonical neutral face, lips closed
    rotation: np.ndarray  # (3, 3) reference head pose: canonical -> pixels
    scale: float  # pixels per face width
    origin: np.ndarray  # (3,) pixels
    source_points: np.ndarray  # (478, 2) tracked landmarks of the reference frame, pixels

    @classmethod
    def from_model(cls, face: FaceModel, frame_index: int) -> "ReferenceFace":
        return cls(int(frame_index), face.neutral, face.frame.rotation, float(face.frame.scale),
                   face.frame.origin, face.source_points)

    def to_model(self) -> FaceModel:
        """The FaceModel that ``Clip.motion`` is relative to."""
        neutral = np.asarray(self.neutral, np.float64)
        frame = HeadFrame(np.asarray(self.rotation, np.float64), float(self.scale),
                          np.asarray(self.origin, np.float64))
        return FaceModel(neutral, build_basis(neutral), frame, np.asarray(self.source_points, np.float64))


@dataclass
class Clip:
    """One prepared shot: T video frames of tracked face, fitted motion and audio analysis."""

    name: str
    fps: float
    motion: MotionSeq  # T frames, relative to ``reference``
    landmarks: np.ndarray  # (T, 478, 3) float32 tracked face mesh, x, y, z in pixels
    tracked: np.ndarray  # (T,) bool; False where landmarks were interpolated over a gap
    fit_residual: np.ndarray  # (T,) float32 RMS residual of the action fit, face widths
    features: AudioFeatures  # T frames at ``fps``
    phones: list[Phone]  # recognised phones covering [0, T / fps] seconds
    validation: list[tuple[int, int]]  # held-out [start, end) frame ranges
    reference: ReferenceFace
    source: str  # path of the video the clip came from
    video_size: tuple[int, int]  # (width, height) in pixels
    start_frame: int = 0  # first frame of this clip in the source video (at ``fps``)
    meta: dict = field(default_factory=dict)  # free-form notes (e.g. tracking statistics)
    # (T, len(BODY_JOINTS), 3) float32 x, y px + MediaPipe visibility of the upper-body joints
    # (avatar.motion.types.BODY_JOINTS); NaN rows where no person was found; None: no body track.
    # load_clip sets motion.upper_body = avatar.data.body.upper_body_deltas(clip) from it.
    body_points: np.ndarray | None = None
    # (len(BODY_JOINTS), 2) float32 px reference pose of upper_body_deltas; None: derived from
    # body_points (a slice carries its whole clip's, see avatar.data.body.reference_pose)
    body_reference: np.ndarray | None = None

    # -- access -------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return len(self.motion)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @property
    def vad(self) -> np.ndarray:
        """(T,) speech probability per frame."""
        return self.features.vad

    def face_model(self) -> FaceModel:
        return self.reference.to_model()

    # -- train / validation split -------------------------------------------------------
    def val_mask(self) -> np.ndarray:
        """(T,) bool: frames held out for validation."""
        return ranges_mask(self.validation, self.num_frames)

    def train_mask(self) -> np.ndarray:
        """(T,) bool: frames that may be used for training (never a validation frame)."""
        return ~self.val_mask()

    def ranges(self, split: str) -> list[tuple[int, int]]:
        """Contiguous [start, end) frame ranges of ``split`` ("train" or "val")."""
        mask = {TRAIN: self.train_mask, VALIDATION: self.val_mask}[_check_split(split)]()
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
        return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2])]

    def split(self, split: str) -> list["Clip"]:
        """The clip's contiguous pieces of ``split`` ("train" or "val"), as clips."""
        return [self.slice(start, end) for start, end in self.ranges(split)]

    def slice(self, start: int, end: int) -> "Clip":
        """Frames [start, end) as a clip; times, phones and validation ranges are shifted."""
        start, end = max(0, start), min(self.num_frames, end)
        t0, t1 = start / self.fps, end / self.fps
        phones = [Phone(p.label, max(p.start, t0) - t0, min(p.end, t1) - t0)
                  for p in self.phones if p.end > t0 and p.start < t1]
        validation = [(max(s, start) - start, min(e, end) - start)
                      for s, e in self.validation if e > start and s < end]
        features = replace(self.features, **{k: getattr(self.features, k)[start:end] for k in FEATURE_ARRAYS})
        body = {} if self.body_points is None else {
            "body_points": self.body_points[start:end], "body_reference": reference_pose(self)}
        return replace(self, motion=self.motion.slice(start, end), landmarks=self.landmarks[start:end],
                       tracked=self.tracked[start:end], fit_residual=self.fit_residual[start:end],
                       features=features, phones=phones, validation=validation,
                       start_frame=self.start_frame + start, **body)


def ranges_mask(ranges: list[tuple[int, int]], num_frames: int) -> np.ndarray:
    """(T,) bool: frames inside any of the [start, end) ranges."""
    mask = np.zeros(num_frames, bool)
    for start, end in ranges:
        mask[start:end] = True
    return mask


def _check_split(split: str) -> str:
    if split not in (TRAIN, VALIDATION):
        raise ValueError(f"unknown split {split!r}; use {TRAIN!r} or {VALIDATION!r}")
    return split


# -- serialisation ----------------------------------------------------------------------
def clip_path(out_dir, name: str) -> Path:
    """Where the clip called ``name`` lives in a dataset folder."""
    return Path(out_dir) / f"{name}{SUFFIX}"


def _meta(clip: Clip) -> dict:
    return {
        "format": FORMAT, "version": VERSION, "avatar_version": __version__,
        "name": clip.name, "fps": clip.fps, "num_frames": clip.num_frames,
        "action_names": list(ACTIONS), "validation": [list(r) for r in clip.validation],
        "source": clip.source, "video_size": list(clip.video_size), "start_frame": clip.start_frame,
        "reference_frame": clip.reference.frame_index, "face_scale": clip.reference.scale,
        "notes": clip.meta,
    }


def _arrays(clip: Clip) -> dict[str, np.ndarray]:
    """Every array of the file, by its name in the archive."""
    step = LANDMARK_STEPS_PER_PIXEL
    ref = clip.reference
    arrays = {name: getattr(clip.motion, name) for name in MOTION_ARRAYS}
    arrays.update({name: getattr(clip.features, name) for name in FEATURE_ARRAYS})
    arrays.update(
        landmarks=(np.round(clip.landmarks * step) / step).astype(np.float32),
        tracked=clip.tracked.astype(bool), fit_residual=clip.fit_residual.astype(np.float32),
        phone_labels=np.array([p.label for p in clip.phones], dtype=str),
        phone_times=np.array([(p.start, p.end) for p in clip.phones], np.float64).reshape(-1, 2),
        face_neutral=ref.neutral, face_rotation=ref.rotation, face_origin=ref.origin,
        face_source_points=ref.source_points, meta=np.array(json.dumps(_meta(clip))))
    if clip.body_points is not None:
        arrays["body_points"] = np.asarray(clip.body_points, np.float32)
    if clip.body_reference is not None:
        arrays["body_reference"] = np.asarray(clip.body_reference, np.float32)
    return arrays


def save_clip(clip: Clip, path) -> None:
    """Write ``clip`` as one compressed ``.npz`` archive, atomically."""
    arrays = _arrays(clip)
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def _open_archive(path: Path, meta_only: bool = False):
    """(arrays, meta dict) of a clip file; AvatarError if it is not one this engine reads."""
    return open_archive(path, FORMAT, VERSION, "clip", meta_only)


def read_clip_meta(path) -> dict:
    """The JSON header of a clip file, without loading its arrays."""
    return _open_archive(Path(path), meta_only=True)[1]


def load_clip(path) -> Clip:
    """Read a clip file written by :func:`save_clip`. With a body track, ``motion.upper_body``
    is its :func:`avatar.data.body.upper_body_deltas` (not stored: derived on loading)."""
    path = Path(path)
    data, meta = _open_archive(path)
    try:
        return _clip_from(data, meta)
    except CONTENT_ERRORS as e:  # arrays of the wrong shape or type, odd JSON values
        raise AvatarError(f"damaged avatar clip file ({e.__class__.__name__}: {e})", str(path),
                          "prepare the video again (avatar prepare)") from None


def _check_frames(clip: Clip) -> None:
    """ValueError unless every per-frame array has one row per motion frame
    (training slices them all alike)."""
    T = clip.num_frames
    rows = {"landmarks": (clip.landmarks, (T, None, 3)), "tracked": (clip.tracked, (T,)),
            "fit_residual": (clip.fit_residual, (T,)), "mel": (clip.features.mel, (T, None)),
            **{k: (getattr(clip.features, k), (T,)) for k in FEATURE_ARRAYS if k != "mel"}}
    for name, (array, shape) in rows.items():
        array = np.asarray(array)
        if array.ndim != len(shape) or any(n is not None and n != d for n, d in zip(shape, array.shape)):
            raise ValueError(f"{name} has shape {array.shape}, expected {shape} for {T} frames")
    if len(clip.video_size) != 2:
        raise ValueError(f"video_size {clip.video_size!r} is not (width, height)")


def _clip_from(data, meta: dict) -> Clip:
    fps = float(meta["fps"])
    motion = motion_from_arrays(data, meta["action_names"], fps)
    features = AudioFeatures(fps=fps, **{k: data[k] for k in FEATURE_ARRAYS})
    phones = [Phone(str(label), float(s), float(e))
              for label, (s, e) in zip(data["phone_labels"], data["phone_times"])]
    reference = ReferenceFace(int(meta["reference_frame"]), data["face_neutral"], data["face_rotation"],
                              float(meta["face_scale"]), data["face_origin"], data["face_source_points"])
    clip = Clip(name=str(meta["name"]), fps=fps, motion=motion, landmarks=data["landmarks"],
                tracked=data["tracked"], fit_residual=data["fit_residual"], features=features,
                phones=phones, validation=[(int(s), int(e)) for s, e in meta["validation"]],
                reference=reference, source=str(meta["source"]),
                video_size=tuple(int(v) for v in meta["video_size"]),
                start_frame=int(meta.get("start_frame", 0)), meta=meta.get("notes", {}),
                body_points=_optional(data, "body_points", (len(motion), NUM_JOINTS, 3)),
                body_reference=_optional(data, "body_reference", (NUM_JOINTS, 2)))
    _check_frames(clip)
    if clip.body_points is not None and motion.upper_body is None:
        motion.upper_body = upper_body_deltas(clip)  # derived, not stored: the vlogger's body motion
    return clip


def _optional(data, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """Array ``name`` of the archive as float32 ``shape``, None if the file has none (older
    files); ValueError if its shape is wrong."""
    if name not in data:
        return None
    array = np.asarray(data[name], np.float32)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    return array


