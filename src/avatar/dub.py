"""``avatar dub VIDEO``: any talking video of one person, re-lipped to new speech.

No enrolment: the video is tracked once (face mesh per frame, streaming; only the
landmarks and a small bank of the person's own mouth interiors are kept), then every frame
is decoded again and only its lower face is re-rendered to the new speech's mouth motion
(avatar.render.reenact, the TANGO §2 lip-sync stage; VLOGGER §3.3 uses the same idea for
video editing: keep the frame, regenerate the mouth). Head motion, eyes, expression and
everything outside the lower face are the video's own pixels. The output has the source's
size and frame rate and the new audio.

Length (VLOGGER §3.3 loops a video the same way for long edits): shorter speech cuts the
video; longer speech plays it forward and back (ping-pong), so no frame jumps, or, when
the person is enrolled (``avatar``), the video comes from the avatar's motion graph
(avatar.gesture.speak: runs of the person's own frames chosen for the speech). Playing
backwards needs random access, so only then are the frames kept in a temporary frame store
(short GOPs, visually lossless) while tracking.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from avatar.audio.types import AudioFeatures, Speech
from avatar.errors import AvatarError

Log = Callable[[str], None]

MIN_FACE_SHARE = 0.5  # a face must be tracked in at least this share of frames
MAX_CROWD_SHARE = 0.2  # more frames than this with a second face: not one person's video
STORE_CRF = 10  # the temporary frame copy is encoded once more for the output: keep it near lossless
PROBE_TOLERANCE = 0.95  # speech longer than this share of the announced frames keeps a frame store


def _silent(_: str) -> None:
    pass


@dataclass
class DubResult:
    output: Path
    source: np.ndarray  # (T,) source frame shown by each output frame
    speech: Speech
    features: AudioFeatures
    face_share: float  # share of source frames with a tracked face (nan: played from an enrolled avatar)
    timings: dict[str, float]

    @property
    def num_frames(self) -> int:
        return len(self.source)


def source_frames(num_source: int, num_output: int) -> np.ndarray:
    """(num_output,) source frame per output frame: the video cut to length, or played
    forward and back (0, 1, .., n-1, n-2, .., 1, 0, 1, ..) without repeating the turning
    frames, so the motion reverses smoothly instead of freezing for a frame."""
    if num_source < 1:
        raise ValueError("the video has no frames")
    if num_source == 1:
        return np.zeros(num_output, int)
    period = 2 * (num_source - 1)
    phase = np.arange(num_output) % period
    return np.where(phase < num_source, phase, period - phase).astype(int)


def dub_video(video, output, audio=None, text: str | None = None, transcript: str | None = None,
              seed: int = 0, motion: str = "rules", checkpoint: str | None = None,
              avatar: str | None = None, progress: bool = True, log: Log = _silent) -> DubResult:
    """Re-render the lower face of ``video`` to new speech (``audio`` file or ``text``);
    speech longer than the video continues from the enrolled ``avatar``'s motion graph
    when one is given (its name or folder), else by playing the video forward and back."""
    from avatar.audio.speech import load_speech
    from avatar.generators.base import Controls
    from avatar.generators.registry import get_generator
    from avatar.pipeline import check_output
    from avatar.video.reader import check_moving, probe

    video, output = Path(video), Path(output)
    check_output(output, {"VIDEO": video, "--audio": audio, "--checkpoint": checkpoint})
    if not video.is_file():
        raise AvatarError("video not found", str(video), "check the path")
    generator = get_generator(motion, **({"checkpoint": checkpoint} if checkpoint else {}))
    info = probe(video)
    check_moving(info, video)
    clock = {"start": time.perf_counter()}
    log(f"video: {info.width}x{info.height}, {info.num_frames} frames at {info.fps:g} fps")
    log("synthesising speech" if text is not None else "analysing the speech")
    speech, features = load_speech(audio_path=audio, text=text, transcript=transcript, fps=info.fps)
    # Frame counts in headers can be estimates: keep a frame store whenever the speech is
    # near the video's length or longer, then plan on the frames actually decoded.
    backwards = features.num_frames > PROBE_TOLERANCE * info.num_frames
    clock["speech"] = time.perf_counter()
    if avatar is not None and features.num_frames > info.num_frames:
        return _from_graph(avatar, video, output, speech, features, seed, motion, checkpoint, progress, log)
    with tempfile.TemporaryDirectory(prefix="avatar-dub-") as tmp:
        store = Path(tmp) / "frames.mp4" if backwards else None
        tracked, bank = track_video(video, info, store, progress=progress)
        share = check_faces(tracked, video)
        plan = source_frames(len(tracked.landmarks), features.num_frames)
        if store is None and (np.diff(plan) < 0).any():
            raise AvatarError("the video has fewer frames than its header says", str(video),
                              "re-encode it (e.g. ffmpeg -i in.mp4 out.mp4) and dub again")
        clock["tracking"] = time.perf_counter()
        mouth = generator.generate(speech, features, Controls(), seed=seed)  # only its lips are used
        clock["lips"] = time.perf_counter()
        if features.num_frames > len(tracked.landmarks):
            log("the speech is longer than the video: playing the video forward and back")
        elif features.num_frames < len(tracked.landmarks):
            log(f"the speech is shorter than the video: using its first {features.num_frames} frames")
        log(f"rendering {len(plan)} frames at {info.width}x{info.height} "
            f"(a face in {share:.0%} of the video's frames)")
        render_dub(video, store, info, tracked, bank, plan, mouth, speech, output, progress=progress)
    clock["render"] = time.perf_counter()
    names = list(clock)
    timings = {b: clock[b] - clock[a] for a, b in zip(names, names[1:])}
    timings["total"] = clock["render"] - clock["start"]
    return DubResult(output, plan, speech, features, share, timings)


def _from_graph(avatar: str, video: Path, output: Path, speech: Speech, features: AudioFeatures, seed: int,
                motion: str, checkpoint: str | None, progress: bool, log: Log) -> DubResult:
    """The whole speech from the enrolled avatar's motion graph (longer than the video)."""
    from avatar.gesture.bundle import load_bundle
    from avatar.gesture.speak import speak_avatar

    bundle = load_bundle(avatar)
    if Path(bundle.source).name != video.name:
        log(f"note: avatar '{bundle.name}' was enrolled from {Path(bundle.source).name}, not {video.name}")
    log("the speech is longer than the video: continuing from the enrolled avatar's motion graph")
    result = speak_avatar(avatar, output, seed=seed, lips=motion, checkpoint=checkpoint, progress=progress,
                          log=log, loaded=(speech, features))
    return DubResult(output, result.plan.source, result.speech, result.features, float("nan"), result.timings)


@dataclass
class TrackedFaces:
    landmarks: np.ndarray  # (T, 478, 3) float32 px of the largest face; NaN where none
    extra_faces: np.ndarray  # (T,) int: other faces beside the largest one


def track_video(video: Path, info, store: Path | None, progress: bool = True):
    """One decoding pass: the largest face's landmarks in every frame and the mouth bank;
    the frames also go to ``store`` if given. Returns (TrackedFaces, MouthBank)."""
    from tqdm import tqdm

    from avatar.data.track import MAX_FACES, extra_faces
    from avatar.face import topology as topo
    from avatar.face.tracker import FaceTracker
    from avatar.gesture.frames import frame_store_writer
    from avatar.render.mouth_bank import OFFER_EVERY, MouthBankBuilder
    from avatar.video.reader import iter_frames

    bank = MouthBankBuilder()
    missing = np.full((topo.NUM_LANDMARKS, 3), np.nan, np.float32)
    rows, extra = [], []
    with ExitStack() as stack:
        tracker = stack.enter_context(FaceTracker(static=False, max_faces=MAX_FACES))
        writer = stack.enter_context(frame_store_writer(store, info.width, info.height, info.fps, crf=STORE_CRF)) if store else None
        bar = stack.enter_context(tqdm(total=info.num_frames, desc="tracking", unit="frame",
                                       disable=not progress, leave=False, mininterval=0.5))
        for i, frame in enumerate(iter_frames(video)):
            faces = tracker.detect(frame)
            rows.append(faces[0].landmarks.astype(np.float32) if faces else missing)
            extra.append(extra_faces(faces))
            if faces and i % OFFER_EVERY == 0:
                bank.add(frame, faces[0].landmarks)
            if writer is not None:
                writer.write(frame)
            bar.update()
    landmarks = np.stack(rows) if rows else np.zeros((0, topo.NUM_LANDMARKS, 3), np.float32)
    return TrackedFaces(landmarks, np.array(extra, int)), bank.build()


def check_faces(tracked: TrackedFaces, video: Path) -> float:
    """The share of frames with a face; a clear error for no face or several faces."""
    found = np.isfinite(tracked.landmarks[:, 0, 0])
    share = float(found.mean()) if len(found) else 0.0
    if share < MIN_FACE_SHARE:
        what = "no face was found" if share == 0 else f"a face was found in only {share:.0%} of the frames"
        raise AvatarError(what, str(video), "use a video that shows one person's face, looking roughly at the camera")
    crowd = float((tracked.extra_faces > 0).mean())
    if crowd > MAX_CROWD_SHARE:
        raise AvatarError(f"several faces in {crowd:.0%} of the frames", str(video),
                          "dub a video of one person (crop it to that person first)")
    return share


def render_dub(video: Path, store: Path | None, info, tracked: TrackedFaces, bank, plan: np.ndarray,
               mouth, speech: Speech, output: Path, progress: bool = True) -> None:
    """Stream the planned source frames with their lower face redone to ``mouth``
    (MotionSeq), with the new speech; nothing is left at ``output`` on failure."""
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    from avatar.data.track import smooth_landmarks
    from avatar.pipeline import BackgroundWriter
    from avatar.render.reenact import FaceReRenderer
    from avatar.video.writer import VideoWriter

    faces = smooth_landmarks(tracked.landmarks)  # tracker jitter would make the mouth shimmer
    lips = FaceReRenderer(bank)
    with ExitStack() as stack:
        writer = stack.enter_context(VideoWriter(output, info.width, info.height, fps=info.fps, audio=speech.audio))
        stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        background = stack.enter_context(BackgroundWriter(writer))
        bar = stack.enter_context(tqdm(total=len(plan), desc="rendering", unit="frame", disable=not progress,
                                       leave=False, mininterval=0.5))
        for i, (src, frame) in enumerate(zip(plan, _planned_frames(video, store, plan, stack))):
            if i and abs(int(src) - int(plan[i - 1])) != 1:
                lips.reset()  # not the next frame: its mouth interior need not follow the last one
            face = faces[src]
            if np.isfinite(face[0, 0]):
                frame = lips.render(frame, face, mouth[min(i, len(mouth) - 1)])
            background.write(frame)
            bar.update()


def _planned_frames(video: Path, store: Path | None, plan: np.ndarray, stack: ExitStack):
    """The source frames of ``plan`` in order: decoded straight from the video when the plan
    only plays forward, else from the frame store (random access)."""
    from avatar.video.reader import iter_frames

    if store is None:
        frames = iter_frames(video)
        for _ in plan:
            frame = next(frames, None)
            if frame is None:  # the container held fewer frames than it announced
                return
            yield frame
        return
    from avatar.gesture.frames import FrameStore

    frames = stack.enter_context(FrameStore(store))
    for src in plan:
        yield frames[min(int(src), len(frames) - 1)]
