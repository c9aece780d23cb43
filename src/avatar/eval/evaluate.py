"""Every motion generator, side by side, on held-out time of real clips (``avatar evaluate``).

For each clip of a dataset (``avatar prepare``) and each of its validation ranges, the
ground truth is the motion fitted to the real video on those frames; every generator
makes motion for the same audio features and phones, once per seed. All motions are
measured alike (METHODS.md, "Shared evaluation ideas"):

- lip sync: bilabial closure, mouth opening vs. loudness correlation, mouth landmark
  distance to the ground truth (both rendered through the clip's own face);
- head and face motion: Delta P and Glo (VASA-1, Loopy), Exp, blink rate, each also as a
  ratio to the ground truth;
- audio-motion fit: the CAPP score of a contrastive model trained on the dataset's
  TRAINING frames only (:mod:`avatar.metrics.capp`), and the Frechet distance to the
  ground truth in that model's motion-embedding space;
- diversity across seeds, and generation speed (real-time factor).

Nothing here ever reads a validation frame to train: CAPP learns from ``Clip.train_mask``.
Outputs (tables and plots) are written by :mod:`avatar.eval.report` and
:mod:`avatar.eval.plots`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np

from avatar.data.clip import Clip
from avatar.diffusion.checkpoint import read_spec
from avatar.errors import AvatarError
from avatar.eval.plots import write_plots
from avatar.eval.report import GROUND_TRUTH, write_report
from avatar.eval.results import Evaluation, Sample, Segment
from avatar.generators.base import Controls, MotionGenerator
from avatar.generators.registry import GENERATORS, get_generator
from avatar.metrics import motion as mm
from avatar.metrics.capp import (AUDIO_SCALARS, CAPP, CAPPConfig, Series, TrainOptions, capp_score, load_capp,
                                 motion_embeddings, save_capp, shift_scores, train_capp)
from avatar.metrics.lipsync import bilabial_closure, mouth_opening, opening_energy_correlation
from avatar.motion.types import MotionSeq
from avatar.training.dataset import load_dataset

DEFAULT_SEEDS = 3
CAPP_CACHE = "capp.safetensors"
MIN_SEGMENT_FRAMES = 2
FD_REFERENCE_STRIDE = 2  # every 2nd training window is enough for the real-vs-real reference
# Per-segment metrics, weighted by the segment's frames when averaged.
SEGMENT_METRICS = ("opening_energy_corr", "lmd_mouth", "delta_p", "glo", "exp", "blink_rate",
                   "capp", "rtf")
RATIOS = {"delta_p_ratio": "delta_p", "glo_ratio": "glo", "exp_ratio": "exp", "blink_ratio": "blink_rate"}

GeneratorSpec = Union[str, tuple[str, dict]]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Method:
    """A generator to evaluate: its name and constructor arguments."""

    name: str
    kwargs: dict = field(default_factory=dict, hash=False)


def parse_methods(generators: Sequence[GeneratorSpec]) -> list[Method]:
    """``["rules", ("vasa", {"checkpoint": ...})]`` -> methods; names must be unique."""
    methods = [Method(g) if isinstance(g, str) else Method(g[0], dict(g[1])) for g in generators]
    names = [m.name for m in methods]
    if not methods or len(set(names)) != len(names):
        raise AvatarError(f"need one or more distinct generator names, got {names}", "--methods")
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        raise AvatarError(f"unknown motion generator {unknown[0]!r}", "--methods",
                          f"available: {', '.join(GENERATORS)}")
    return methods


def held_out_segments(clips: Sequence[Clip]) -> list[Segment]:
    """The validation ranges of every clip, as segments."""
    segments = []
    for clip in clips:
        face = clip.face_model()
        for start, end in clip.ranges("val"):
            if end - start < MIN_SEGMENT_FRAMES:
                continue
            piece = clip.slice(start, end)
            segments.append(Segment(clip.name, start, end, piece.motion, piece.features, piece.phones, face))
    if not segments:
        raise AvatarError("the dataset has no held-out (validation) frames to evaluate on", None,
                          "prepare it again with --val-fraction above 0")
    return segments


# -- measuring one motion -------------------------------------------------------------------
def lip_metrics(motion: MotionSeq, segment: Segment, truth_landmarks: np.ndarray) -> dict[str, float]:
    """Bilabial closure, opening-loudness correlation and mouth LMD of one motion."""
    landmarks = mm.motion_landmarks(segment.face, motion)  # (T, 478, 3), head unposed
    opening = mouth_opening(landmarks)  # (T,)
    closure, count = bilabial_closure(opening, segment.phones, motion.fps)
    return {"bilabial_closure": closure, "bilabial_count": float(count),
            "opening_energy_corr": opening_energy_correlation(opening, segment.features.energy),
            "lmd_mouth": mm.landmark_distance(landmarks, truth_landmarks)}


def motion_metrics(motion: MotionSeq) -> dict[str, float]:
    """Head and face movement statistics of one motion."""
    return {"delta_p": mm.delta_p(motion), "glo": mm.glo_variation(motion),
            "exp": mm.exp_variation(motion), "blink_rate": mm.blink_rate(motion)}


def measure(method: str, seed: int | None, motion: MotionSeq, segment: Segment,
            truth_landmarks: np.ndarray, capp: CAPP, seconds: float = float("nan")) -> Sample:
    """Every per-segment metric of one motion."""
    values = {**lip_metrics(motion, segment, truth_landmarks), **motion_metrics(motion),
              "capp": capp_score(capp, motion, segment.features),
              "rtf": seconds / motion.duration if motion.duration else float("nan")}
    return Sample(method, segment, seed, motion, values)


def generate(method: Method, generator, segment: Segment, seed: int, controls: Controls) -> tuple[MotionSeq, float]:
    """(motion for the segment's audio, seconds it took)."""
    start = time.perf_counter()
    try:
        motion = generator.generate(segment.speech(), segment.features, controls, seed=seed)
    except AvatarError as e:
        raise AvatarError(f"generator {method.name!r} failed on {segment.label}: {e.one_line()}") from None
    return motion, time.perf_counter() - start


# -- CAPP ---------------------------------------------------------------------------------
def _fingerprint(clips: Sequence[Clip]) -> list:
    """What the cached CAPP model was trained on: clip names, lengths and held-out ranges."""
    return [[c.name, c.num_frames, [list(r) for r in c.validation]] for c in clips]


def capp_model(clips: Sequence[Clip], out_dir: Path, checkpoint=None, options: TrainOptions | None = None,
               log: Log | None = None) -> tuple[CAPP, Path]:
    """The CAPP model: from ``checkpoint``, else trained on the clips' TRAINING frames
    (cached as ``out_dir/capp.safetensors`` and reused while the dataset is the same)."""
    if checkpoint is not None:
        return load_capp(checkpoint), Path(checkpoint)
    cache = out_dir / CAPP_CACHE
    config = CAPPConfig(audio_dim=clips[0].features.mel.shape[1] + AUDIO_SCALARS)
    options = options or TrainOptions()
    made_for = {"dataset": _fingerprint(clips), "options": asdict(options)}
    if cache.is_file():
        spec = read_spec(cache)
        if spec["config"] == CAPP(config).to_config() and all(spec["extra"].get(k) == v for k, v in made_for.items()):
            return load_capp(cache), cache
    series = [Series.of(c.motion, c.features, c.train_mask(), config.actions) for c in clips]
    if log:
        log(f"training the CAPP model on the training frames of {len(clips)} clip(s)")
    model = train_capp(series, config, options, log=log)
    save_capp(cache, model, made_for)
    return model, cache


def capp_shift_curve(capp: CAPP, segments: Sequence[Segment]) -> dict[int, float]:
    """CAPP score of the held-out ground truth shifted by -max_shift..max_shift frames,
    averaged over segments weighted by their frames."""
    limit = capp.config.max_shift
    curves = [(shift_scores(capp, s.motion, s.features, range(-limit, limit + 1)), s.num_frames)
              for s in segments if s.num_frames >= capp.config.window + 2 * limit]
    if not curves:
        return {}
    return {shift: _weighted([c[shift] for c, _ in curves], [w for _, w in curves])
            for shift in range(-limit, limit + 1)}


def training_embeddings(capp: CAPP, clips: Sequence[Clip]) -> np.ndarray:
    """(N, E) CAPP motion embeddings of real TRAINING motion: the real-vs-real FD reference."""
    parts = [motion_embeddings(capp, piece.motion, FD_REFERENCE_STRIDE)
             for clip in clips for piece in clip.split("train") if piece.num_frames >= capp.config.window]
    return np.concatenate(parts) if parts else np.zeros((0, capp.config.embed_dim), np.float32)


# -- aggregation --------------------------------------------------------------------------
def _weighted(values, weights) -> float:
    """Weighted mean over the finite values (nan if there are none)."""
    v, w = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    ok = np.isfinite(v) & (w > 0)
    return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")


def summarise(samples: Sequence[Sample]) -> dict[str, float]:
    """Frame-weighted means of the per-segment metrics of one method (all seeds);
    bilabial closure is pooled over all p/b/m phones."""
    frames = [s.segment.num_frames for s in samples]
    out = {key: _weighted([s.values[key] for s in samples], frames) for key in SEGMENT_METRICS}
    out["bilabial_closure"] = _weighted([s.values["bilabial_closure"] for s in samples],
                                        [s.values["bilabial_count"] for s in samples])
    out["bilabial_count"] = float(sum(s.values["bilabial_count"] for s in samples))
    return out


def seed_diversity(samples: Sequence[Sample]) -> dict[str, float]:
    """Head (degrees) and expression diversity across seeds, frame-weighted over segments."""
    by_segment: dict[str, list[Sample]] = {}
    for s in samples:
        by_segment.setdefault(s.segment.label, []).append(s)
    head, face, frames = [], [], []
    for group in by_segment.values():
        head.append(mm.diversity([np.degrees(s.motion.rotation) for s in group]))
        face.append(mm.diversity([mm.expression_matrix(s.motion) for s in group]))
        frames.append(group[0].segment.num_frames)
    return {"diversity_head": _weighted(head, frames), "diversity_exp": _weighted(face, frames)}


def sample_embeddings(capp: CAPP, samples: Sequence[Sample]) -> np.ndarray:
    """(N, E) CAPP motion embeddings of every window of the samples' motions."""
    parts = [motion_embeddings(capp, s.motion) for s in samples if len(s.motion) >= capp.config.window]
    return np.concatenate(parts) if parts else np.zeros((0, capp.config.embed_dim), np.float32)


def embedding_fd(emb: np.ndarray, reference: np.ndarray) -> float:
    """Frechet distance of two embedding sets (N, E), (M, E); nan if either is too small."""
    return mm.frechet_distance(emb, reference) if min(len(emb), len(reference)) >= 2 else float("nan")


def add_ratios(table: dict[str, dict[str, float]]) -> None:
    """Each method's Delta P, Glo, Exp and blink rate as a ratio to the ground truth's."""
    truth = table[GROUND_TRUTH]
    for row in table.values():
        for ratio, key in RATIOS.items():
            row[ratio] = row[key] / truth[key] if truth[key] else float("nan")


def summary_table(samples: Sequence[Sample], names: Sequence[str], capp: CAPP,
                  clips: Sequence[Clip]) -> dict[str, dict[str, float]]:
    """Ground truth and each method -> aggregated metrics, FD, diversity and GT ratios."""
    held_out = sample_embeddings(capp, [s for s in samples if s.method == GROUND_TRUTH])  # (N, E)
    table = {}
    for name in [GROUND_TRUTH, *names]:
        group = [s for s in samples if s.method == name]
        # the ground truth's own row: real training motion vs. real held-out motion (a floor)
        emb = training_embeddings(capp, clips) if name == GROUND_TRUTH else sample_embeddings(capp, group)
        table[name] = {**summarise(group), "fd_capp": embedding_fd(emb, held_out)}
        if name != GROUND_TRUTH:
            table[name].update(seed_diversity(group))
    add_ratios(table)
    return table


def _settings(dataset_dir, methods: Sequence[Method], seeds: int, clips: Sequence[Clip],
              segments: Sequence[Segment]) -> dict:
    """What was evaluated, for the report."""
    return {"dataset": str(Path(dataset_dir).resolve()), "seeds": seeds,
            "methods": [{"name": m.name, "kwargs": {k: str(v) for k, v in m.kwargs.items()}} for m in methods],
            "clips": len(clips), "segments": len(segments),
            "held_out_frames": int(sum(s.num_frames for s in segments))}


# -- the whole evaluation -----------------------------------------------------------------
def _run_methods(generators: dict[Method, MotionGenerator], segments: Sequence[Segment],
                 truth: dict[str, np.ndarray], capp: CAPP, seeds: int, controls: Controls,
                 log: Log | None) -> list[Sample]:
    """Generate and measure every method x segment x seed."""
    samples = []
    for method, generator in generators.items():
        if log:
            log(f"{method.name}: {len(segments)} segment(s) x {seeds} seed(s)")
        for segment in segments:
            for seed in range(seeds):
                motion, seconds = generate(method, generator, segment, seed, controls)
                samples.append(measure(method.name, seed, motion, segment, truth[segment.label], capp, seconds))
    return samples


def evaluate(dataset_dir, generators: Sequence[GeneratorSpec], out_dir, seeds: int = DEFAULT_SEEDS,
             capp_checkpoint=None, controls: Controls = Controls(), capp_options: TrainOptions | None = None,
             plots: bool = True, log: Log | None = None) -> Evaluation:
    """Evaluate ``generators`` on the held-out ranges of the dataset; write tables and plots.

    ``generators``: names, or (name, constructor kwargs) pairs, e.g.
    ``["rules", ("vasa", {"checkpoint": "vasa.safetensors"})]``. ``capp_checkpoint``: a
    trained CAPP model; without it one is trained on the dataset's training frames
    (``capp_options``: :class:`avatar.metrics.capp.TrainOptions`) and cached in ``out_dir``.
    Writes metrics.md / .csv, results.json, segments.csv and (``plots``) PNG plots to ``out_dir``.
    """
    if seeds < 1:
        raise AvatarError(f"seeds must be at least 1, got {seeds}", "--seeds")
    methods = parse_methods(generators)
    made = {m: get_generator(m.name, **m.kwargs) for m in methods}  # fail early, before any training
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips = load_dataset(dataset_dir)
    segments = held_out_segments(clips)
    capp, capp_path = capp_model(clips, out, capp_checkpoint, capp_options, log)
    truth = {s.label: mm.motion_landmarks(s.face, s.motion) for s in segments}  # (T, 478, 3) each
    samples = [measure(GROUND_TRUTH, None, s.motion, s, truth[s.label], capp) for s in segments]
    samples += _run_methods(made, segments, truth, capp, seeds, controls, log)
    result = Evaluation(summary_table(samples, [m.name for m in methods], capp, clips), samples,
                        capp_shift_curve(capp, segments), str(capp_path),
                        settings=_settings(dataset_dir, methods, seeds, clips, segments))
    result.files = write_report(result, out) + (write_plots(result, out) if plots else [])
    if log:
        log(f"wrote {len(result.files)} file(s) to {out}")
    return result
