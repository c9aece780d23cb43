"""The photo path: portrait + speech -> motion -> warped frames -> mp4.

Each stage takes and returns typed objects; this module only wires them together and
reports progress. The UI (avatar.cli) and the Python API (avatar.api) sit on top.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from avatar.audio.types import AudioFeatures, Speech
from avatar.config import VIDEO
from avatar.errors import AvatarError
from avatar.face.model import FaceModel
from avatar.generators.base import Controls
from avatar.generators.registry import get_generator
from avatar.image import MAX_VIDEO_SIDE, fit_max_size, load_image
from avatar.motion.types import MotionSeq

Log = Callable[[str], None]


def _silent(_: str) -> None:
    pass


@dataclass
class Portrait:
    """A photo ready to animate."""

    image: np.ndarray  # (H, W, 3) uint8 RGB, at output resolution
    face: FaceModel
    source: str = "<array>"


@dataclass
class SpeakResult:
    output: Path
    motion: MotionSeq
    speech: Speech
    features: AudioFeatures
    num_frames: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def load_portrait(image, max_size: int | None = None, log: Log = _silent,
                  where: str | None = None) -> Portrait:
    """Read a photo (path or RGB array), downscale to ``max_size``, and fit its face;
    ``where`` names the photo in errors (default: its path)."""
    from avatar.face.tracker import largest_face
    from avatar.render.closed_mouth import close_mouth

    where = where or (str(image) if not isinstance(image, np.ndarray) else "<array>")
    rgb = load_image(image) if not isinstance(image, np.ndarray) else _as_rgb(image)
    rgb = _fit_video_size(rgb, max_size, where, log)
    face = largest_face(rgb, where, warn=log)
    rgb, model = close_mouth(rgb, FaceModel.from_observation(face, close_jaw=True))  # an open mouth is closed
    return Portrait(rgb, model, where)


def _fit_video_size(rgb: np.ndarray, max_size: int | None, where: str, log: Log) -> np.ndarray:
    """Downscale to ``max_size``, and never above MAX_VIDEO_SIDE (saying so)."""
    limit = min(max_size or MAX_VIDEO_SIDE, MAX_VIDEO_SIDE)
    fitted = fit_max_size(rgb, limit)
    if fitted.shape != rgb.shape and limit < (max_size or np.inf):
        log(f"{where}: {rgb.shape[1]}x{rgb.shape[0]} is larger than the largest video "
            f"({MAX_VIDEO_SIDE} px); downscaled to {fitted.shape[1]}x{fitted.shape[0]}")
    return fitted


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise AvatarError("image array must be (H, W, 3) or (H, W, 4) uint8 RGB", "image")
    return np.ascontiguousarray(image[..., :3])


def generate_motion(speech: Speech, features: AudioFeatures, controls: Controls = Controls(),
                    seed: int = 0, method: str = "rules", **generator_options) -> MotionSeq:
    return get_generator(method, **generator_options).generate(speech, features, controls, seed=seed)


ENCODE_QUEUE = 8  # frames rendered ahead of the encoder: bounded, so memory stays flat


def render_video(portrait: Portrait, motion: MotionSeq, speech: Speech, output,
                 progress: bool = True) -> int:
    """Stream the rendered frames and the speech into an mp4; returns the frame count.

    Rendering (this thread) and encoding (a worker thread; x264 encodes in threads of its
    own) overlap, so the two cores work at once. The renderer's many small matrix products
    run with one BLAS thread: OpenBLAS's spinning workers would otherwise double its CPU
    time and starve the encoder.
    """
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    from avatar.render.warp import WarpRenderer
    from avatar.video.writer import VideoWriter

    renderer = WarpRenderer(portrait.image, portrait.face)
    if motion.upper_body is not None:  # the body moves too, if the photo shows one
        from avatar.render.body_warp import with_body_motion

        renderer = with_body_motion(renderer, portrait.image, portrait.face)
    h, w = portrait.image.shape[:2]
    with VideoWriter(output, w, h, fps=motion.fps, audio=speech.audio) as writer, \
            threadpool_limits(limits=1, user_api="blas"):
        with BackgroundWriter(writer) as background:
            for i in tqdm(range(len(motion)), desc="rendering", unit="frame",
                          disable=not progress, leave=False, mininterval=0.5):
                background.write(renderer.render(motion[i]))
    return len(motion)


class BackgroundWriter:
    """Feeds frames to ``writer.write`` from a worker thread through a bounded queue.

    An encoder error is re-raised in the caller's thread at the next ``write`` or at exit;
    an error in the caller stops the worker without writing the rest.
    """

    _STOP = object()

    def __init__(self, writer):
        import queue
        import threading

        self._writer = writer
        self._queue = queue.Queue(maxsize=ENCODE_QUEUE)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="avatar-encoder", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def _run(self) -> None:
        while (frame := self._queue.get()) is not self._STOP:
            if self._error is None:
                try:
                    self._writer.write(frame)
                except BaseException as e:  # handed to the caller's thread
                    self._error = e

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(frame)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self._error = self._error or exc  # the worker drops what is still queued
        self._queue.put(self._STOP)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error
        return False


def speak(image, output, audio=None, text: str | None = None, transcript: str | None = None,
          controls: Controls = Controls(), seed: int = 0, method: str = "rules",
          generator_options: dict | None = None, fps: float = VIDEO.fps,
          max_size: int | None = None, export_motion=None, progress: bool = True,
          log: Log = _silent) -> SpeakResult:
    """Portrait + speech -> talking video at ``output``. See avatar.api.speak."""
    from avatar.audio.speech import load_speech
    from avatar.motion.io import write_motion

    output = Path(output)
    check_output(output, {"--image": image, "--audio": audio,
                          "--checkpoint": (generator_options or {}).get("checkpoint")})
    generator = get_generator(method, **(generator_options or {}))  # fail early on a bad model
    timings = {}
    t0 = time.perf_counter()
    log("reading the portrait and tracking the face")
    portrait = load_portrait(image, max_size=max_size, log=log)
    t1 = time.perf_counter()
    log("synthesising speech" if text is not None else "analysing the speech")
    speech, features = load_speech(audio_path=audio, text=text, transcript=transcript, fps=fps)
    t2 = time.perf_counter()
    motion = generator.generate(speech, features, controls, seed=seed)
    t3 = time.perf_counter()
    if export_motion is not None:
        write_motion(motion, export_motion)
    log(f"rendering {len(motion)} frames ({motion.duration:.1f} s) at "
        f"{portrait.image.shape[1]}x{portrait.image.shape[0]}")
    n = render_video(portrait, motion, speech, output, progress=progress)
    t4 = time.perf_counter()
    timings.update(portrait=t1 - t0, speech=t2 - t1, motion=t3 - t2, render=t4 - t3, total=t4 - t0)
    return SpeakResult(output, motion, speech, features, n, timings)


def check_output(output: Path, inputs: dict | None = None) -> None:
    """Refuse an output path that cannot become an mp4, or that is one of ``inputs``
    ({option: path}; arrays and None are skipped): the input would be overwritten."""
    from avatar.video.writer import check_destination

    for option, path in (inputs or {}).items():
        if isinstance(path, (str, os.PathLike)) and _same_file(output, Path(path)):
            raise AvatarError(f"the output would overwrite the input given as {option}", str(output),
                              "write the video to another file")
    if output.suffix.lower() != ".mp4":
        if output.is_dir():
            check_destination(output)  # says it is a folder
        raise AvatarError("the output must be an .mp4 file", str(output), "name it like out.mp4")
    check_destination(output)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (links and relative paths included)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:  # an unreadable path cannot be the same file as anything we write
        return False
