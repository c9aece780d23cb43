"""``avatar prepare``: real talking-face videos -> a dataset of clips for learning motion.

Per video: decode and track the face mesh frame by frame (streaming), cut it into shots
at scene cuts, and for every usable shot fit the mesh into the motion space (relative to
a neutral-looking reference frame of that shot), analyse its audio (features, voice
activity, recognised phones) and hold out a validation range. Each shot becomes one clip
file (avatar.data.clip); ``report.json`` lists what became of every video and why.

The same pass runs the MediaPipe pose model alone on the frames (``body``, avatar.data.body):
shots that show an upper body (``auto``: both shoulders seen in most frames) keep their
shoulders, elbows, wrists and hips per frame as ``Clip.body_points``.

Unsuitable videos are skipped with a reason (``VideoReport.code``): unreadable, no audio,
no face, several faces, face lost for too long, too short, or only short shots between
scene cuts. Runs resume: videos whose clips are already there are kept (unless ``force``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from avatar.audio.features import extract_features
from avatar.audio.listen import listen
from avatar.audio.speech import DIGITAL_SILENCE, cover_timeline
from avatar.audio.types import Audio
from avatar.audio.vad import SPEECH_THRESHOLD, voice_activity
from avatar.config import AUDIO
from avatar.data.body import (AUTO, BODY_MODES, NO, YES, BodySampler, shoulder_share, shows_body,
                              upper_body_deltas)
from avatar.data.clip import Clip, ReferenceFace, clip_path, ranges_mask, read_clip_meta, save_clip
from avatar.face.fit import ActionFitter, tracked_lid_closure
from avatar.data.report import (KEPT, PREPARED, SKIPPED, PrepareReport, VideoReport, load_report,
                                report_path, save_report)
from avatar.data.track import (MAX_FACES, TrackedVideo, choose_reference, fill_gaps, missing_runs,
                               resample_frames, scene_cuts, track_frames)
from avatar.errors import AvatarError
from avatar.face.model import FaceModel
from avatar.face.tracker import FaceObservation, FaceTracker
from avatar.video.reader import VideoInfo, check_moving, iter_frames, probe, read_audio_track

Log = Callable[[str], None]

DEFAULT_VAL_FRACTION = 0.15
MIN_VAL_SECONDS = 2.0  # a validation range is at least this long when the clip allows
MAX_VAL_SHARE = 0.5  # ... but never more than this share of the clip
MIN_CLIP_SECONDS = 2.0  # shorter shots are not worth a clip
MIN_FACE_SHARE = 0.9  # a shot needs a face in at least this share of its frames
MAX_GAP_SECONDS = 0.5  # longer stretches without a face are not interpolated
MAX_EXTRA_FACE_SHARE = 0.05  # more frames with a second face than this: several faces

# Why a video (or shot) is skipped: VideoReport.code
UNREADABLE, NO_AUDIO, NO_FACE, SEVERAL_FACES, FACE_LOST, TOO_SHORT, SCENE_CUT, DUPLICATE = (
    "unreadable", "no_audio", "no_face", "several_faces", "face_lost", "too_short", "scene_cut",
    "duplicate_name")


class Unsuitable(AvatarError):
    """A video (or shot) that cannot become a clip; ``code`` says why in one word."""

    def __init__(self, code: str, what: str, where: str | None = None):
        self.code = code
        super().__init__(what, where)


@dataclass(frozen=True)
class Options:
    fps: float | None  # None: each video's own frame rate
    val_fraction: float
    progress: bool
    body: str = AUTO  # AUTO, YES or NO: track the upper body (avatar.data.body)


# -- the run ------------------------------------------------------------------------------
def prepare_videos(paths: Iterable, out_dir, fps: float | None = None,
                   val_fraction: float = DEFAULT_VAL_FRACTION, force: bool = False,
                   progress: bool = True, log: Log = print, body: str = AUTO, pool=None) -> PrepareReport:
    """Prepare every video of ``paths`` into the dataset folder ``out_dir`` (created if needed).

    ``body``: "auto" keeps the upper-body track of shots that show one, "yes" of every
    shot, "no" does not run the pose model. ``pool`` (avatar.batch.pool.LocalPool or
    avatar.batch.raypool.RayPool) tracks the videos in parallel, one video a task; the
    clips come back to this process, which writes the dataset (workers only read videos).

    Videos whose clips already exist are kept unless ``force``; videos skipped before are
    skipped again without work while their file is unchanged. The report file is updated
    after every video, so an interrupted run loses at most the videos in progress.
    """
    _check_options(fps, val_fraction, body)
    out_dir = _dataset_folder(out_dir)
    entries = load_report(out_dir)
    paths = [Path(p).resolve() for p in paths]
    done: dict[int, VideoReport] = {}
    todo: list[int] = []
    for i, path in enumerate(paths):
        if any(p.stem == path.stem for p in paths[:i]):
            done[i] = _skipped(path, Unsuitable(DUPLICATE, "another video of this run has the same name"))
        elif (resumed := None if force else _resumed(path, out_dir, entries.get(path.stem))) is not None:
            done[i] = resumed
        else:
            todo.append(i)
    for i in sorted(done):
        _record(done[i], entries, out_dir, log)
    options = Options(fps, val_fraction, progress and pool is None, body)
    for i, tracked in _track_all([paths[i] for i in todo], options, pool, progress):
        path = paths[todo[i]]
        done[todo[i]] = entry = _entry(path, tracked, out_dir, entries.get(path.stem))
        _record(entry, entries, out_dir, log)
    return PrepareReport(report_path(out_dir), [done[i] for i in range(len(paths))])


def _record(entry: VideoReport, entries: dict, out_dir: Path, log: Log) -> None:
    entries[entry.name] = replace(entry, status=PREPARED if entry.status == KEPT else entry.status)
    save_report(entries, out_dir)
    log(_summary(entry))


@dataclass(frozen=True)
class Tracked:
    """What tracking one video gave: its clips and notes, or why it is unsuitable."""

    clips: list[Clip] | None
    notes: str | None
    seconds: float
    code: str | None = None
    reason: str | None = None


def track_task(task: tuple[Path, Options]) -> Tracked:
    """One video -> Tracked (a pool task: failures are its result, never raised)."""
    path, options = task
    started = time.perf_counter()
    try:
        clips, notes = prepare_video(path, options)
    except Unsuitable as error:
        return Tracked(None, None, time.perf_counter() - started, error.code, error.what)
    except AvatarError as error:  # the reader's "cannot open / damaged" errors
        return Tracked(None, None, time.perf_counter() - started, UNREADABLE, error.what)
    return Tracked(clips, notes, time.perf_counter() - started)


def _track_all(paths: list[Path], options: Options, pool, progress: bool):
    """(index, Tracked) for every video: in this process one after another, or on the pool
    as they finish (with a bar of videos done)."""
    if pool is None:
        yield from ((i, track_task((path, options))) for i, path in enumerate(paths))
        return
    from tqdm import tqdm

    with tqdm(total=len(paths), desc="videos", unit="video", disable=not progress) as bar:
        for done in pool.run(track_task, [(path, options) for path in paths]):
            yield done.index, done.value if done.error is None else Tracked(None, None, 0.0, UNREADABLE, done.error)
            bar.update()


def _entry(path: Path, tracked: Tracked, out_dir: Path, previous: VideoReport | None) -> VideoReport:
    """The report entry of a tracked video, its clips saved into the dataset."""
    if tracked.clips is None:
        entry = _skipped(path, Unsuitable(tracked.code, tracked.reason))
    else:
        for clip in tracked.clips:
            save_clip(clip, clip_path(out_dir, clip.name))
        size, mtime = _source_stamp(path)
        clips = tracked.clips
        entry = VideoReport(path.stem, str(path), PREPARED, clips=[c.name for c in clips], reason=tracked.notes,
                            num_frames=sum(c.num_frames for c in clips), source_size=size, source_mtime=mtime,
                            body={c.name: {"tracked": c.body_points is not None,
                                           "shoulders_visible": c.meta["shoulders_visible_share"]}
                                  for c in clips if "shoulders_visible_share" in c.meta})
    entry.processing_seconds = tracked.seconds
    entry.duration = _video_duration(path)
    _remove_stale_clips(out_dir, previous, entry)
    return entry


def _check_options(fps: float | None, val_fraction: float, body: str = AUTO) -> None:
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise AvatarError(f"invalid frame rate {fps!r}", "--fps", "use a positive fps, e.g. 25")
    if not 0.0 <= val_fraction < 1.0:
        raise AvatarError(f"invalid validation fraction {val_fraction!r}", "--val-fraction",
                          "use a share in [0, 1), e.g. 0.15")
    if body not in BODY_MODES:
        raise AvatarError(f"invalid body mode {body!r}", "--body", f"use one of {', '.join(BODY_MODES)}")


def _dataset_folder(out_dir) -> Path:
    """The dataset folder, created if needed; AvatarError if it cannot be."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AvatarError(f"cannot create the dataset folder ({e.strerror or e})", str(out_dir),
                          "choose a folder path you can write to") from None
    return out_dir


def _summary(entry: VideoReport) -> str:
    """One log line about a video."""
    if entry.status == SKIPPED:
        return f"skipped {entry.name}: {entry.reason}"
    if entry.status == KEPT:
        return f"kept {entry.name}: already prepared ({len(entry.clips)} clip(s))"
    note = f"; {entry.reason}" if entry.reason else ""
    return (f"prepared {entry.name}: {len(entry.clips)} clip(s), {entry.duration:.1f} s of video in "
            f"{entry.processing_seconds:.1f} s ({entry.realtime_factor:.2f}x real time){_body_note(entry)}{note}")


def _body_note(entry: VideoReport) -> str:
    """The log note '; body tracked in 1/2 clip(s) (shoulders seen in 97%, 3% of frames)',
    or '' if the pose did not run."""
    if not entry.body:
        return ""
    tracked = sum(1 for b in entry.body.values() if b["tracked"])
    shares = ", ".join(f"{b['shoulders_visible']:.0%}" for b in entry.body.values())
    return f"; body tracked in {tracked}/{len(entry.body)} clip(s) (shoulders seen in {shares} of frames)"


def _source_stamp(path: Path) -> tuple[int | None, float | None]:
    """(size, mtime) of a file, or (None, None) if it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None, None
    return stat.st_size, stat.st_mtime


def _skipped(path: Path, error: AvatarError) -> VideoReport:
    size, mtime = _source_stamp(path)
    return VideoReport(path.stem, str(path), SKIPPED, code=getattr(error, "code", UNREADABLE),
                       reason=error.what, source_size=size, source_mtime=mtime)


# -- resuming -----------------------------------------------------------------------------
def _clip_belongs_to(out_dir: Path, name: str, source: Path) -> bool | None:
    """True if a valid clip file ``name`` of ``source`` exists, False if it is another
    video's, None if there is no valid clip file."""
    try:
        meta = read_clip_meta(clip_path(out_dir, name))
    except AvatarError:
        return None
    return meta.get("source") == str(source)


def _resumed(path: Path, out_dir: Path, previous: VideoReport | None) -> VideoReport | None:
    """The earlier result for ``path`` if it still holds, else None (prepare it)."""
    if previous is not None and previous.source == str(path) and previous.status == SKIPPED:
        unchanged = (previous.source_size, previous.source_mtime) == _source_stamp(path)
        return previous if unchanged else None
    names = previous.clips if previous is not None and previous.clips else [path.stem]
    owners = [_clip_belongs_to(out_dir, name, path) for name in names]
    if False in owners:
        return _skipped(path, Unsuitable(DUPLICATE, f"the dataset already has a clip {names[owners.index(False)]!r} "
                                                    "from another video; rename this one"))
    if all(owners):
        base = previous or VideoReport(path.stem, str(path), KEPT, clips=names)
        return replace(base, status=KEPT)
    return None


def _video_duration(path: Path) -> float:
    try:
        return probe(path).duration
    except AvatarError:
        return 0.0


def _remove_stale_clips(out_dir: Path, previous: VideoReport | None, entry: VideoReport) -> None:
    """Delete clip files an earlier run made from this video that the new run did not."""
    if previous is None or previous.source != entry.source:
        return
    for name in set(previous.clips) - set(entry.clips):
        clip_path(out_dir, name).unlink(missing_ok=True)


# -- one video ----------------------------------------------------------------------------
def prepare_video(path, options: Options) -> tuple[list[Clip], str | None]:
    """All usable clips of one video and notes on what was left out (None if nothing).

    Raises Unsuitable when no clip can be made, AvatarError when the file is unreadable.
    """
    path = Path(path).resolve()
    info = probe(path)
    check_moving(info, path)  # a photo opens as a video of one frame
    audio = _speech_track(path, info)
    tracked = _track_video(path, info, options)
    if tracked.num_frames == 0:
        raise Unsuitable(UNREADABLE, "no video frames could be decoded")
    if not tracked.tracked.any():
        raise Unsuitable(NO_FACE, "no face found in the video")
    cuts = scene_cuts(tracked.change, tracked.fps)
    shots = _shots(tracked.num_frames, cuts)
    clips, problems = [], []
    for index, (start, end) in enumerate(shots):
        name = path.stem if len(shots) == 1 else f"{path.stem}_shot{index + 1}"
        try:
            clips.append(_make_clip(name, path, tracked, audio, start, end, options))
        except Unsuitable as problem:
            problems.append((start, problem))
    return _usable(clips, problems, cuts, tracked.fps)


def _usable(clips: list[Clip], problems: list, cuts: list[int], fps: float) -> tuple[list[Clip], str | None]:
    """The clips and a note about the dropped shots; Unsuitable if there are no clips."""
    cut_note = f"scene cuts at {', '.join(f'{c / fps:.1f} s' for c in cuts)}" if cuts else ""
    dropped = "; ".join(f"shot at {start / fps:.1f} s: {p.what}" for start, p in problems)
    if not clips:
        if not cuts:
            raise problems[0][1]
        raise Unsuitable(SCENE_CUT, f"{cut_note}, and no usable shot ({dropped})")
    notes = [n for n in (cut_note and f"split at {cut_note}", dropped and f"dropped {dropped}") if n]
    return clips, "; ".join(notes) or None


def _speech_track(path: Path, info: VideoInfo) -> Audio:
    """The soundtrack at the analysis rate; Unsuitable if there is none or it is silent."""
    if not info.has_audio:
        raise Unsuitable(NO_AUDIO, "the video has no audio track")
    audio = read_audio_track(path, AUDIO.sample_rate)
    if audio.samples.size == 0 or float(np.max(np.abs(audio.samples))) < DIGITAL_SILENCE:
        raise Unsuitable(NO_AUDIO, "the audio track is silent")
    return audio


def _track_video(path: Path, info: VideoInfo, options: Options) -> TrackedVideo:
    """Face mesh (and body joints, unless options.body is NO) of every frame at the dataset
    frame rate, with a progress bar."""
    from contextlib import ExitStack

    from tqdm import tqdm

    fps = options.fps or info.fps
    frames = resample_frames(iter_frames(path), info.fps, fps)
    with ExitStack() as stack:
        tracker = stack.enter_context(FaceTracker(static=False, max_faces=MAX_FACES))
        body = None
        if options.body != NO:
            from avatar.body.tracker import PoseTracker  # loads MediaPipe's pose model

            body = BodySampler(stack.enter_context(PoseTracker(static=False)), fps, options.body)
        bar = stack.enter_context(tqdm(total=info.num_frames, desc=path.stem, unit="frame",
                                       disable=not options.progress, leave=False, mininterval=0.5))
        return track_frames(frames, tracker, fps, (info.width, info.height), on_frame=bar.update, body=body)


def _shots(num_frames: int, cuts: list[int]) -> list[tuple[int, int]]:
    """[start, end) frame ranges between scene cuts."""
    edges = [0, *cuts, num_frames]
    return [(s, e) for s, e in zip(edges[:-1], edges[1:]) if e > s]


# -- one shot -----------------------------------------------------------------------------
def _check_shot(tracked: np.ndarray, extra_faces: np.ndarray, fps: float) -> None:
    """Raise Unsuitable unless a shot ((T,) face found, (T,) extra faces) can be a clip."""
    if len(tracked) < MIN_CLIP_SECONDS * fps:
        raise Unsuitable(TOO_SHORT, f"shorter than {MIN_CLIP_SECONDS:g} s")
    if not tracked.any() or tracked.mean() < MIN_FACE_SHARE:
        raise Unsuitable(NO_FACE, f"a face was found in only {tracked.mean():.0%} of the frames")
    if (extra_faces > 0).mean() > MAX_EXTRA_FACE_SHARE:
        raise Unsuitable(SEVERAL_FACES, f"several faces in {(extra_faces > 0).mean():.0%} of the frames")
    start, end = max(missing_runs(tracked), key=lambda r: r[1] - r[0], default=(0, 0))
    if end - start > MAX_GAP_SECONDS * fps:
        raise Unsuitable(FACE_LOST, f"the face is lost for {(end - start) / fps:.1f} s at {start / fps:.1f} s")


def _make_clip(name: str, path: Path, video: TrackedVideo, audio: Audio, start: int, end: int,
               options: Options) -> Clip:
    """Frames [start, end) of a tracked video as a clip (Unsuitable if they cannot be one)."""
    tracked = video.tracked[start:end]
    _check_shot(tracked, video.extra_faces[start:end], video.fps)
    landmarks = fill_gaps(video.landmarks[start:end], tracked)  # (T, 478, 3)
    validation = validation_ranges(end - start, video.fps, options.val_fraction)
    reference = choose_reference(landmarks, tracked & ~ranges_mask(validation, end - start))
    face = FaceModel.from_observation(FaceObservation(landmarks[reference], video.size))
    motion, residual = ActionFitter(face).fit_all(landmarks, video.fps)
    motion = tracked_lid_closure(motion)
    shot_audio = _audio_slice(audio, start / video.fps, end / video.fps)
    features, phones = _analyse_audio(shot_audio, video.fps, end - start)
    body, body_notes = _shot_body(video, start, end, options.body)
    clip = Clip(name=name, fps=video.fps, motion=motion, landmarks=landmarks, tracked=tracked,
                fit_residual=residual, features=features, phones=phones,
                validation=validation,
                reference=ReferenceFace.from_model(face, reference), source=str(path),
                video_size=video.size, start_frame=start, body_points=body,
                meta={"speech_share": float(np.mean(features.vad > SPEECH_THRESHOLD)),
                      "tracked_share": float(tracked.mean()),
                      "mean_fit_residual": float(residual.mean()), **body_notes})
    if body is not None:
        clip.motion.upper_body = upper_body_deltas(clip)  # as load_clip gives it
    return clip


def _shot_body(video: TrackedVideo, start: int, end: int, mode: str) -> tuple[np.ndarray | None, dict]:
    """(body_points of frames [start, end) or None, clip notes): kept in mode YES, in AUTO
    when the shot shows an upper body; notes say whether and how often shoulders were seen."""
    if video.body_points is None:
        return None, {"body_tracked": False}
    points = video.body_points[start:end]
    keep = mode == YES or (mode == AUTO and shows_body(points, video.size))
    return (points if keep else None), {"body_tracked": bool(keep),
                                        "shoulders_visible_share": shoulder_share(points, video.size)}


def _audio_slice(audio: Audio, start: float, end: float) -> Audio:
    """The samples between ``start`` and ``end`` seconds."""
    rate = audio.sample_rate
    return Audio(audio.samples[round(start * rate): round(end * rate)], rate)


def _analyse_audio(audio: Audio, fps: float, num_frames: int):
    """(AudioFeatures, phones covering [0, num_frames / fps]) of a shot's audio."""
    vad = voice_activity(audio, fps, num_frames)  # (T,)
    features = extract_features(audio, fps, num_frames=num_frames, vad=vad)
    # The same phones speak finds without a transcript: recognised words, forced-aligned.
    phones = listen(audio).phones if audio.samples.size else []
    return features, cover_timeline(phones, num_frames / fps)


def validation_ranges(num_frames: int, fps: float, fraction: float) -> list[tuple[int, int]]:
    """The held-out [start, end) frame range: the last ``fraction`` of the clip, at least
    MIN_VAL_SECONDS when the clip allows, at most MAX_VAL_SHARE of it; [] for fraction 0."""
    if fraction <= 0 or num_frames < 2:
        return []
    size = max(round(fraction * num_frames), round(MIN_VAL_SECONDS * fps))
    size = max(1, min(size, int(MAX_VAL_SHARE * num_frames)))
    return [(num_frames - size, num_frames)]


