"""The avatar bundle: everything ``avatar enroll`` learns from a person's video, in one folder.

Layout (docs/avatar-bundle.md)::

    NAME/
      bundle.json            format, version, name, source, fps, size, frame count, report
      frames.mp4             the source frames, H.264 with short GOPs (avatar.gesture.frames)
      track.npz              body tracking (avatar.body.types keys "body_*"), audio features
                             ("audio_*"), recognised phones ("phone_*")
      graph.npz              the pruned motion graph ("graph_*") and the raw graph's size
      aumoclip.safetensors   the audio-motion embedding model (carries its config)
      embeddings.npz         per-frame motion embeddings: low (T, D), high (T, D)
      mouth.npz              mouth interiors from the person's own frames (avatar.render.mouth_bank)

A bundle is written into a hidden temporary folder next to its destination and renamed into
place when complete, so an interrupted enrolment never leaves half a bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avatar.audio.types import AudioFeatures, Phone
from avatar.body.types import BodyTrack
from avatar.errors import AvatarError
from avatar.fileio import ARCHIVE_ERRORS, CONTENT_ERRORS, atomic_write, read_npz
from avatar.gesture.graph import MotionGraph

FORMAT = "avatar-bundle"
FORMAT_VERSION = 1
META, FRAMES, TRACK, GRAPH, MODEL, EMBEDDINGS, MOUTH = (
    "bundle.json", "frames.mp4", "track.npz", "graph.npz", "aumoclip.safetensors", "embeddings.npz",
    "mouth.npz")
HOME_VARIABLE = "AVATAR_HOME"  # where named avatars live; default below
DEFAULT_HOME = Path("~/.local/share/avatar")
AUDIO_KEYS = ("energy", "pitch", "onset", "vad", "mel")
REENROLL_HINT = "enroll the video again (avatar enroll VIDEO --name NAME --force)"


@dataclass
class EnrollReport:
    """What enrolment found and how long it took (stored in bundle.json)."""

    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    frames: int = 0
    person_share: float = 0.0  # frames with a tracked person
    hands_share: float = 0.0  # frames with at least one tracked hand
    graph: dict[str, float] = field(default_factory=dict)  # nodes/edges before and after pruning
    dead_ends: dict[str, float] = field(default_factory=dict)  # P(dead end) of random walks
    training: dict[str, float] = field(default_factory=dict)  # AuMoCLIP steps, losses, accuracies
    warnings: list[str] = field(default_factory=list)


@dataclass
class Bundle:
    """An enrolled avatar, loaded (frames stay on disk: open them with :meth:`frame_store`)."""

    folder: Path
    name: str
    source: str
    fps: float
    size: tuple[int, int]  # (width, height)
    body: BodyTrack
    features: AudioFeatures  # of the enrolled video's soundtrack, at fps
    phones: list[Phone]
    graph: MotionGraph  # pruned
    motion_low: np.ndarray  # (T, D) per-frame low-level motion embeddings
    motion_high: np.ndarray  # (T, D) high-level (window) embedding of each frame
    report: EnrollReport

    @property
    def num_frames(self) -> int:
        return self.body.num_frames

    def frame_store(self):
        from avatar.gesture.frames import FrameStore

        return FrameStore(self.folder / FRAMES)

    def model(self):
        from avatar.gesture.aumoclip import load_aumoclip

        return load_aumoclip(self.folder / MODEL)

    def mouth_bank(self):
        from avatar.render.mouth_bank import MouthBank

        path = self.folder / MOUTH
        if not path.is_file():
            return None
        try:
            return MouthBank.from_arrays(read_npz(path))
        except ARCHIVE_ERRORS + CONTENT_ERRORS as e:
            raise AvatarError(f"the avatar's mouth bank is damaged ({e.__class__.__name__}: {e})", str(path),
                              REENROLL_HINT) from None


# -- where bundles live --------------------------------------------------------------------
def avatars_home() -> Path:
    return Path(os.environ.get(HOME_VARIABLE) or DEFAULT_HOME).expanduser() / "avatars"


def bundle_folder(name_or_path: str | os.PathLike) -> Path:
    """A bundle folder from a name (under :func:`avatars_home`) or a path to the folder."""
    path = Path(name_or_path).expanduser()
    if path.is_dir() or os.sep in str(name_or_path) or str(name_or_path).startswith("."):
        return path
    return avatars_home() / str(name_or_path)


# -- arrays ---------------------------------------------------------------------------------
def features_arrays(features: AudioFeatures) -> dict[str, np.ndarray]:
    out = {f"audio_{k}": np.asarray(getattr(features, k)) for k in AUDIO_KEYS}
    out["audio_fps"] = np.float64(features.fps)
    return out


def features_from_arrays(data) -> AudioFeatures:
    return AudioFeatures(float(data["audio_fps"]), **{k: np.asarray(data[f"audio_{k}"]) for k in AUDIO_KEYS})


def phones_arrays(phones: list[Phone]) -> dict[str, np.ndarray]:
    return {"phone_labels": np.array([p.label for p in phones], dtype=str),
            "phone_times": np.array([(p.start, p.end) for p in phones], np.float64).reshape(-1, 2)}


def phones_from_arrays(data) -> list[Phone]:
    return [Phone(str(label), float(s), float(e))
            for label, (s, e) in zip(data["phone_labels"], data["phone_times"])]


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


# -- writing --------------------------------------------------------------------------------
class BundleWriter:
    """Collects a bundle's files in a temporary folder; :meth:`commit` moves it into place.

    Use as a context manager: on an error (or Ctrl-C) the temporary folder is removed and
    any existing bundle of that name is left untouched.
    """

    def __init__(self, folder: Path, force: bool = False):
        self.folder = Path(folder)
        if self.folder.exists() and not force:
            raise AvatarError("an avatar with this name already exists", str(self.folder),
                              "choose another --name or pass --force to replace it")
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.", suffix=".partial",
                                         dir=self.folder.parent))

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name: str) -> Path:
        return self.tmp / name

    def save_npz(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        _save_npz(self.tmp / name, arrays)

    def save_meta(self, meta: dict) -> None:
        text = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **meta}, indent=2)
        atomic_write(self.tmp / META, lambda f: f.write(text.encode()))

    def commit(self) -> Path:
        """Replace any old bundle at the destination with the finished one."""
        old = None
        if self.folder.exists():
            old = self.folder.with_name(f".{self.folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.folder, old)
        os.replace(self.tmp, self.folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.folder


def save_bundle_arrays(writer: BundleWriter, bundle: Bundle, extra_meta: dict | None = None) -> None:
    """Write every file of ``bundle`` except frames, model and mouth bank (written as made)."""
    writer.save_npz(TRACK, {**bundle.body.save_arrays(), **features_arrays(bundle.features),
                            **phones_arrays(bundle.phones)})
    writer.save_npz(GRAPH, bundle.graph.save_arrays())
    writer.save_npz(EMBEDDINGS, {"low": bundle.motion_low, "high": bundle.motion_high})
    writer.save_meta({"name": bundle.name, "source": bundle.source, "fps": bundle.fps,
                      "size": list(bundle.size), "num_frames": bundle.num_frames,
                      "report": asdict(bundle.report), **(extra_meta or {})})


# -- reading --------------------------------------------------------------------------------
def load_bundle(name_or_path: str | os.PathLike) -> Bundle:
    """Load an enrolled avatar by name or folder; a clear AvatarError if it is not one."""
    folder = bundle_folder(name_or_path)
    meta_path = folder / META
    if not meta_path.is_file():
        raise AvatarError("no enrolled avatar found", str(folder),
                          f"enroll one first: avatar enroll VIDEO --name {Path(str(name_or_path)).name}")
    try:
        return _check_consistent(_read_bundle(folder, meta_path))
    except ARCHIVE_ERRORS + CONTENT_ERRORS as e:  # missing, truncated, foreign, mis-shaped
        raise AvatarError(f"the avatar bundle is damaged ({e.__class__.__name__}: {e})", str(folder),
                          REENROLL_HINT) from None


def _read_bundle(folder: Path, meta_path: Path) -> Bundle:
    meta = json.loads(meta_path.read_text())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise AvatarError(f"not an avatar bundle of version {FORMAT_VERSION}", str(folder),
                          "enroll the video again with this version of avatar")
    track, graph, emb = (read_npz(folder / name) for name in (TRACK, GRAPH, EMBEDDINGS))
    width, height = (int(v) for v in meta["size"])
    return Bundle(folder=folder, name=str(meta["name"]), source=str(meta["source"]), fps=float(meta["fps"]),
                  size=(width, height), body=BodyTrack.from_arrays(track, str(folder / TRACK)),
                  features=features_from_arrays(track), phones=phones_from_arrays(track),
                  graph=MotionGraph.from_arrays(graph), motion_low=np.asarray(emb["low"], np.float32),
                  motion_high=np.asarray(emb["high"], np.float32), report=EnrollReport(**meta["report"]))


def _check_consistent(bundle: Bundle) -> Bundle:
    """``bundle``, or ValueError if its files disagree (speaking indexes frames by them)."""
    T = bundle.num_frames
    if not np.isfinite(bundle.fps) or bundle.fps <= 0 or min(bundle.size) <= 0:
        raise ValueError(f"frame rate {bundle.fps!r} or size {bundle.size!r} is not positive")
    for name, emb in (("low", bundle.motion_low), ("high", bundle.motion_high)):
        if emb.ndim != 2 or len(emb) != T:
            raise ValueError(f"embeddings {name!r} have shape {emb.shape}, expected ({T}, D)")
    graph = bundle.graph
    if graph.num_nodes and (graph.starts.min() < 0 or graph.starts.max() + graph.node_frames > T):
        raise ValueError(f"motion graph nodes lie outside the {T} frames")
    return bundle
