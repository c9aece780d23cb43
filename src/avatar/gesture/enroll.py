"""``avatar enroll``: a person's talking video -> an avatar bundle (TANGO §3.1-3.2).

One decoding pass tracks every frame (pose with world joints, hands, person mask, face
mesh), copies it into the bundle's frame store and offers it to the mouth bank. Then the
soundtrack is analysed, the motion graph built and pruned (Algorithm 1), AuMoCLIP trained
on the video (plus any other enrolled avatars given), and the per-frame motion
embeddings precomputed for retrieval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from avatar.audio.types import Audio, AudioFeatures, Phone, Speech
from avatar.body.types import BodyTrack
from avatar.config import AUDIO
from avatar.errors import AvatarError
from avatar.gesture import bundle as bundle_io
from avatar.gesture.bundle import Bundle, BundleWriter, EnrollReport
from avatar.video.reader import VideoInfo, check_moving, iter_frames, probe, read_audio_track

Log = Callable[[str], None]

RECOMMENDED_SECONDS = 20.0  # shorter videos give few gestures to choose from
MIN_NODES = 4  # a pruned graph smaller than this cannot make a video
MIN_KEPT_SHARE = 0.5  # pruning should keep at least this share of the nodes ...
THRESHOLD_SCALES = (1.0, 1.25, 1.5, 2.0, 3.0)  # ... else the transition thresholds are raised
MIN_PERSON_SHARE = 0.5  # the person must be tracked in at least this share of frames
WALK_SECONDS = (10.0, 30.0)  # TANGO §3.1: dead-end probability of random walks this long
NUM_WALKS = 1000
TRAIN_SECONDS_PER_BASE_STEPS = 40.0  # AuMoCLIP: the default steps per this much video ...
TRAIN_MINUTES_MAX = 4.0  # ... within this time budget (the enrolment time goals)


def _silent(_: str) -> None:
    pass


@dataclass
class EnrollOptions:
    name: str
    folder: Path | None = None  # default: the named avatar's folder under avatars_home()
    force: bool = False
    train_minutes: float | None = None  # AuMoCLIP budget; None: the settings' default
    also: list[str] = field(default_factory=list)  # other enrolled avatars to train on as well
    seed: int = 0
    frame_range: tuple[int, int] | None = None  # [start, end) frames of the video (benchmarks)
    progress: bool = True


def enroll(video, options: EnrollOptions, log: Log = _silent) -> Bundle:
    """Enroll ``video`` as ``options.name``; returns the loaded bundle."""
    path = Path(video)
    info = probe(path)
    _check_video(path, info, log)
    folder = options.folder or bundle_io.bundle_folder(options.name)
    report = EnrollReport()
    with BundleWriter(folder, force=options.force) as writer:
        start = time.perf_counter()
        body = _track(path, info, writer, options, report)
        report.seconds["track"] = time.perf_counter() - start
        features, phones = _timed(report, "audio", lambda: _analyse_audio(path, info, body, options))
        graph = _timed(report, "graph", lambda: _motion_graph(body, report, log, str(path)))
        model, low, high = _timed(report, "aumoclip",
                                  lambda: _embedding(body, features, phones, writer, options, report, log))
        bundle = Bundle(folder, options.name, str(path.resolve()), body.fps, body.size, body, features,
                        phones, graph, low, high, report)
        report.seconds["total"] = time.perf_counter() - start
        bundle_io.save_bundle_arrays(writer, bundle, {"frame_range": options.frame_range})
        writer.commit()
    log(f"enrolled '{options.name}' in {report.seconds['total']:.0f} s -> {folder}")
    return bundle_io.load_bundle(folder)


def _timed(report: EnrollReport, stage: str, run):
    start = time.perf_counter()
    out = run()
    report.seconds[stage] = time.perf_counter() - start
    return out


def _check_video(path: Path, info: VideoInfo, log: Log) -> None:
    check_moving(info, path)
    if not info.has_audio:
        raise AvatarError("the video has no audio track", str(path),
                          "enrolment learns how the person moves while speaking: use a video with sound")
    if info.duration < RECOMMENDED_SECONDS:
        log(f"warning: {path.name} is {info.duration:.1f} s long; {RECOMMENDED_SECONDS:g} s or more "
            "gives retrieval more gestures to choose from")


# -- pass 1: frames -------------------------------------------------------------------------
def _frames(path: Path, options: EnrollOptions):
    start, end = options.frame_range or (0, None)
    for i, frame in enumerate(iter_frames(path)):
        if end is not None and i >= end:
            return
        if i >= start:
            yield frame


def _track(path: Path, info: VideoInfo, writer: BundleWriter, options: EnrollOptions,
           report: EnrollReport) -> BodyTrack:
    """Track every frame, store it and collect mouth samples: one decoding pass."""
    from tqdm import tqdm

    from avatar.body.tracker import BodyTracker
    from avatar.gesture.frames import frame_store_writer
    from avatar.render.mouth_bank import OFFER_EVERY, MouthBankBuilder

    start, end = options.frame_range or (0, info.num_frames)
    frames = []
    bank = MouthBankBuilder()
    with BodyTracker() as tracker, \
            frame_store_writer(writer.path(bundle_io.FRAMES), info.width, info.height, info.fps) as store, \
            tqdm(total=end - start, desc="tracking", unit="frame", disable=not options.progress,
                 leave=False, mininterval=0.5) as bar:
        for i, frame in enumerate(_frames(path, options)):
            observed = tracker.process(frame)
            frames.append(observed)
            store.write(frame)
            if i % OFFER_EVERY == 0 and np.isfinite(observed.face[0, 0]):
                bank.add(frame, observed.face)
            bar.update()
    size = (info.width, info.height)
    body = BodyTrack.from_frames(frames, info.fps, size, tracker.mask_shape(size))
    writer.save_npz(bundle_io.MOUTH, bank.build().save_arrays())
    report.frames = body.num_frames
    person = np.isfinite(body.world[:, 0, 0])
    report.person_share = float(person.mean()) if len(person) else 0.0
    report.hands_share = float(np.isfinite(body.hands[:, :, 0, 0]).any(1).mean()) if len(person) else 0.0
    if report.person_share < MIN_PERSON_SHARE:
        raise AvatarError(f"a person was found in only {report.person_share:.0%} of the frames", str(path),
                          "use a video showing one person's upper body (head, shoulders, arms)")
    return body


# -- audio ----------------------------------------------------------------------------------
def _analyse_audio(path: Path, info: VideoInfo, body: BodyTrack,
                   options: EnrollOptions) -> tuple[AudioFeatures, list[Phone]]:
    """Features at the video's frame rate and recognised phones of the enrolled frames."""
    from avatar.audio.align import default_aligner
    from avatar.audio.features import extract_features
    from avatar.audio.speech import cover_timeline
    from avatar.audio.vad import voice_activity

    audio = read_audio_track(path, AUDIO.sample_rate)
    first = (options.frame_range or (0, 0))[0]
    rate = audio.sample_rate
    begin = round(first / info.fps * rate)
    samples = audio.samples[begin: begin + round(body.num_frames / info.fps * rate)]
    audio = Audio(samples, rate)
    vad = voice_activity(audio, info.fps, body.num_frames)
    features = extract_features(audio, info.fps, num_frames=body.num_frames, vad=vad)
    phones = default_aligner().recognize(audio) if samples.size else []
    return features, cover_timeline(phones, body.num_frames / info.fps)


# -- motion graph ---------------------------------------------------------------------------
def _motion_graph(body: BodyTrack, report: EnrollReport, log: Log, where: str):
    """The pruned motion graph (TANGO §3.1, Algorithm 1) with before/after statistics."""
    from avatar.body.joints import joint_features, joint_positions
    from avatar.gesture.graph import balanced_distance, node_distances, node_starts
    from avatar.gesture.walks import dead_end_probability

    positions = joint_positions(body)  # (T, J, 3)
    velocities = joint_features(positions, body.fps)[..., 3:6]  # (T, J, 3) per second
    segment = np.zeros(body.num_frames, np.int64)  # one continuous shot
    starts, seg = node_starts(segment)
    d_pose, d_iou = node_distances(positions, velocities, body.masks > 127, body.hand_boxes(), starts)
    # Each term divided by its typical natural-step size: raw d_iou (hand boxes barely
    # overlap between moving hands) would otherwise decide almost every edge alone.
    distances = balanced_distance(d_pose, d_iou, starts, seg)
    raw, pruned, scale = _pruned_graph(distances, starts, seg, where)
    if scale != 1.0:
        report.warnings.append(f"little varied motion: transition thresholds raised x{scale:g}")
        log(f"warning: {report.warnings[-1]}")
    report.graph = {"nodes_before": raw.num_nodes, "edges_before": raw.num_edges,
                    "nodes_after": pruned.num_nodes, "edges_after": pruned.num_edges,
                    "threshold_scale": scale}
    for seconds in WALK_SECONDS:
        for label, graph in (("before", raw), ("after", pruned)):
            p = dead_end_probability(graph, seconds, body.fps, walks=NUM_WALKS, seed=0)
            report.dead_ends[f"{seconds:g}s_{label}"] = p
    log(f"motion graph: {raw.num_nodes} nodes / {raw.num_edges} edges -> pruned {pruned.num_nodes} / "
        f"{pruned.num_edges}; dead ends of 10 s walks {report.dead_ends['10s_before']:.1%} -> "
        f"{report.dead_ends['10s_after']:.1%}")
    return pruned


def _pruned_graph(distances: np.ndarray, starts: np.ndarray, segment: np.ndarray, where: str):
    """(raw graph, pruned graph, threshold scale): the paper's thresholds unless pruning
    would then keep less than MIN_KEPT_SHARE of the nodes (a video with little motion)."""
    from avatar.gesture.graph import build_graph
    from avatar.gesture.prune import prune

    best = None
    for scale in THRESHOLD_SCALES:
        raw = build_graph(distances, starts, segment, threshold_scale=scale)
        try:
            pruned, _ = prune(raw)
        except AvatarError:
            continue
        if best is None or pruned.num_nodes > best[1].num_nodes:
            best = (raw, pruned, scale)
        if pruned.num_nodes >= MIN_KEPT_SHARE * raw.num_nodes:
            break
    if best is None or best[1].num_nodes < MIN_NODES:
        raise AvatarError("the video has too little varied motion to build a motion graph", where,
                          "enroll a longer video of the person talking and gesturing")
    return best


# -- AuMoCLIP -------------------------------------------------------------------------------
def _embedding(body: BodyTrack, features: AudioFeatures, phones: list[Phone], writer: BundleWriter,
               options: EnrollOptions, report: EnrollReport, log: Log):
    """Train AuMoCLIP on this video (and ``options.also``) and embed every frame's motion."""
    from avatar.body.joints import joint_features, joint_positions
    from avatar.diffusion.checkpoint import save_model
    from avatar.gesture.aumoclip import audio_embeddings, audio_inputs, motion_embeddings
    from avatar.metrics.retrieval import low_level_accuracy
    from avatar.training.aumoclip import AuMoCLIPSettings, train_aumoclip

    motion = joint_features(joint_positions(body), body.fps)  # (T, J, 15)
    audio = audio_inputs(features, _timeline(phones))  # (T, Fa)
    sequences = [(audio, motion)]
    for other in options.also:
        extra = bundle_io.load_bundle(other)
        sequences.append((audio_inputs(extra.features, _timeline(extra.phones)),
                          joint_features(joint_positions(extra.body), extra.fps)))
    seconds = sum(len(a) for a, _ in sequences) / body.fps
    # Longer training memorises short videos (bench_retrieval: 400 steps beat 2 minutes on
    # 38 s of video); more video gets proportionally more steps, within the time budget.
    steps = round(AuMoCLIPSettings.steps * max(1.0, seconds / TRAIN_SECONDS_PER_BASE_STEPS))
    settings = AuMoCLIPSettings(seed=options.seed, steps=steps,
                                minutes=options.train_minutes or TRAIN_MINUTES_MAX)
    start = time.perf_counter()
    model = train_aumoclip(sequences, body.fps, settings, log=log, progress=options.progress)
    report.training["seconds"] = time.perf_counter() - start
    save_model(writer.path(bundle_io.MODEL), model)
    embedded = motion_embeddings(model, motion)
    # How well the embedding fits the enrolled video itself (training frames: an upper
    # bound; benchmarks/bench_retrieval.py measures held-out time).
    heard = audio_embeddings(model, audio)
    report.training["low_level_accuracy_enrolled"] = low_level_accuracy(heard.low, embedded.low, body.fps).accuracy
    report.training["sequences"] = len(sequences)
    return model, embedded.low.astype(np.float32), embedded.high.astype(np.float32)


def _timeline(phones: list[Phone]) -> Speech:
    """What AuMoCLIP's text features read from speech: the phone timeline (no samples)."""
    return Speech(Audio(np.zeros(0, np.float32), AUDIO.sample_rate), phones)
