"""Training the ``vasa`` generator on prepared clips (``avatar train --method vasa``).

EDM training (Karras et al. 2022) of the motion transformer on random training windows
(previous-window motion and audio included):
each condition dropped at random (for classifier-free guidance), mouth channels weighted
up (KeyFace's lambda_lower = 3), a temporal loss that keeps head pose smoother than
expression (VLOGGER's lambda_temp). The loss on selection windows (a block of training
time never trained on; fixed noise, so evaluations compare) and the loss on the clips'
held-out validation ranges are measured every ``eval_every`` steps and reported
(``history``); nothing is chosen by the held-out one.

Which model is kept: on the talking-face clips (2 min of training video) both losses are
lowest after ~1500 steps and then rise (the model memorises fine detail: the rise is
largest at low noise levels), while the motion it generates for held-out audio keeps
getting better until ~4000-5000 steps (CAPP score, Frechet distance, head and expression
variation and blink rate against the real motion; benchmarks/bench_train.py and avatar
evaluate on its snapshots). So by default training runs a fixed budget of steps, which
also makes a seed reproducible whatever the machine's speed, and keeps the last model;
``keep="best"`` keeps the lowest selection loss instead, with early stopping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from avatar.errors import AvatarError
from avatar.generators.vasa import (MOTION_DIM, MOUTH_ACTIONS, VasaConfig, action_channels,
                                    build_vasa, group_slices)
from avatar.motion.types import BLINK_ACTIONS
from avatar.training.windows import SELECT_MIN_WINDOWS, cut, sources, window_starts

MOUTH_WEIGHT = 3.0  # KeyFace: lambda_lower = 3 on the lower face
# Blinks are brief and independent of the audio, and the model is slow to learn them: with
# weight 1 (and the face's temporal weight) it blinked half as often in the first few
# thousand steps (5 vs 11 per minute after 1300 steps, 3 vs 7 after 2500; measured).
BLINK_WEIGHT = 3.0
TEMPORAL_POSE = 1.0  # VLOGGER-style temporal loss: head pose and gaze smooth...
TEMPORAL_FACE = 0.1  # ...expression freer
TEMPORAL_BLINK = 1.0  # ...but the lids close and open as fast as the real ones
COND_DROPOUT = {"audio": 0.1, "gaze": 0.1, "distance": 0.1, "emotion": 0.1}
PREFIX_DROPOUT = 0.2  # also trains the first window, which has no previous frames
# Gaze augmentation: real clips look at the camera (window means within ~3 deg), so the
# gaze condition would only be learnt over that range. Half the training windows get one
# random offset added to their gaze frames and their gaze condition alike, up to
# GAZE_AUGMENT rad (~17 deg; the CLI's left/right presets are 15 deg).
GAZE_AUGMENT = 0.3
GAZE_AUGMENT_PROBABILITY = 0.5
# Distance: every clip is framed alike (head scale within 2% of 1), so nothing can be
# learnt about it, and a user's --head-distance 1.5 would be far outside what the model
# saw. Half the windows get a random distance in this range with their motion unchanged:
# the model learns to keep its motion whatever the distance (the renderer applies it).
DISTANCE_AUGMENT = (0.6, 1.6)
DISTANCE_AUGMENT_PROBABILITY = 0.5
VAL_NOISE_SEED = 12345
KEEP = ("last", "best")
VAL_WINDOWS = 64  # windows (with repeats) per loss measurement


@dataclass
class Evaluation:
    """Losses at one evaluation of a training run (fixed windows and noise each time)."""

    step: int
    minutes: float
    train: float  # loss of the last training batch
    select: float  # selection windows (with keep="best": picks the checkpoint, stops early)
    held_out: float  # the clips' validation ranges: reported only (nan if they have no window)


@dataclass
class TrainReport:
    steps: int
    minutes: float
    kept: Evaluation  # the evaluation whose model is in the checkpoint
    history: list[Evaluation]

    @property
    def lowest_select(self) -> Evaluation:
        """The evaluation with the lowest selection loss."""
        return min(self.history, key=lambda e: e.select)

    @property
    def best_held_out(self) -> Evaluation:
        """The evaluation with the lowest held-out loss (for reporting)."""
        return min(self.history, key=lambda e: (np.isnan(e.held_out), e.held_out))


@dataclass
class TrainSettings:
    max_steps: int | None = 5000  # step budget (None: only the time limit)
    minutes: float = 30.0  # wall-clock limit
    keep: str = "last"  # "last" model, or the "best" selection loss (then also early stopping)
    batch: int = 32
    lr: float = 3e-4
    eval_every: int = 100
    patience: int = 15  # evaluations without a better selection loss before stopping
    seed: int = 0
    threads: int = 2


def train_vasa(clips, out_path, config: VasaConfig = VasaConfig(), settings: TrainSettings = TrainSettings(),
               log=print, on_evaluation=None) -> TrainReport:
    """Train on ``clips`` (avatar.data.Clip) and write the kept model (``settings.keep``) to
    ``out_path``. ``on_evaluation(model, evaluation)``, if given, is called after every
    evaluation."""
    import torch

    from avatar.diffusion.checkpoint import save_model

    if settings.keep not in KEEP:
        raise AvatarError(f"unknown choice of the model to keep {settings.keep!r}", "--keep", f"use one of {KEEP}")
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    rates = sorted({float(c.fps) for c in clips})
    if len(rates) > 1:
        raise AvatarError(f"the dataset mixes frame rates {rates}", None,
                          "prepare it again with one rate, e.g. avatar prepare --fps 25 ...")
    bands = sorted({c.features.mel.shape[1] for c in clips})
    if len(bands) > 1:
        raise AvatarError(f"the dataset mixes audio features of {bands} mel bands", None,
                          "prepare all its videos with the same version of avatar")
    config = replace(config, fps=rates[0], n_mels=bands[0])  # the model takes the data's frame rate and bands
    N, K = config.window, config.prefix
    train, select, held = (sources(clips, split, N) for split in ("train", "select", "val"))
    train_picks, select_picks, held_picks = (_all_starts(s, N, K) for s in (train, select, held))
    if not train_picks:
        raise AvatarError(f"no training window of {N} frames in the dataset", None,
                          "prepare longer videos, or more of them")
    if not select_picks:
        raise AvatarError("nothing to choose the checkpoint on: it needs one clip with "
                          f"{SELECT_MIN_WINDOWS * N / config.fps:g} s of training frames, or two clips", None,
                          "prepare longer videos, or more of them")
    log(f"{len(train_picks)} training windows; selection: {len(select_picks)} windows of "
        f"{len({i for i, _ in select_picks})} clip(s); held-out (reported only): {len(held_picks)}")
    stats = _statistics(train)
    model = build_vasa(config, **stats)
    rng = np.random.default_rng(settings.seed)
    select_batch = _fixed_batch(select, select_picks, N, K, np.random.default_rng(settings.seed))
    # the held-out windows are cut with their own generator: training draws do not depend on them
    held_batch = _fixed_batch(held, held_picks, N, K, np.random.default_rng(settings.seed)) if held_picks else None
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    weight, temporal = _loss_weights(torch)
    best, kept, since_best, step, t0 = None, None, 0, 0, time.time()
    history: list[Evaluation] = []
    while True:
        picks = [train_picks[i] for i in rng.integers(len(train_picks), size=settings.batch)]
        batch = augment(cut(train, picks, N, K), rng)
        loss = _loss(model, batch, weight, temporal, torch, rng, train=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        out_of_budget = _out_of_budget(step, t0, settings)
        if step % settings.eval_every == 0 or out_of_budget:  # the last model is always measured
            e = Evaluation(step, (time.time() - t0) / 60, loss.item(),
                           _validate(model, select_batch, weight, temporal, torch),
                           _validate(model, held_batch, weight, temporal, torch) if held_batch else float("nan"))
            history.append(e)
            if on_evaluation is not None:
                on_evaluation(model, e)
            log(f"step {step}: train {e.train:.4f}  select {e.select:.4f}  held-out {e.held_out:.4f}  "
                f"({e.minutes:.1f} min)")
            improved = best is None or e.select < best.select
            best, since_best = (e, 0) if improved else (best, since_best + 1)
            if improved or settings.keep == "last":
                kept = e
                save_model(out_path, model, extra={"step": step, "val_loss": e.select, "held_out_loss": e.held_out,
                                                   "minutes": e.minutes})
        if out_of_budget or (settings.keep == "best" and since_best >= settings.patience):
            break
    return TrainReport(step, (time.time() - t0) / 60, kept, history)


def _all_starts(srcs, N, K) -> list[tuple[int, int]]:
    return [(i, int(s)) for i, src in enumerate(srcs) for s in window_starts(src, N, K)]


def _statistics(srcs) -> dict[str, np.ndarray]:
    motion = np.concatenate([s.motion[s.allowed] for s in srcs])
    audio = np.concatenate([s.audio[s.allowed] for s in srcs])
    floor = 1e-3  # channels that never move in the data must not blow up
    var = motion.var(0)
    var[group_slices()["gaze"]] += GAZE_AUGMENT_PROBABILITY * GAZE_AUGMENT**2 / 3  # + the offsets' variance
    return {"mean": motion.mean(0), "std": np.maximum(np.sqrt(var), floor),
            "audio_mean": audio.mean(0), "audio_std": np.maximum(audio.std(0), floor)}


def _loss_weights(torch):
    weight = torch.ones(MOTION_DIM)
    weight[action_channels(MOUTH_ACTIONS)] = MOUTH_WEIGHT
    weight[action_channels(BLINK_ACTIONS)] = BLINK_WEIGHT
    temporal = torch.full((MOTION_DIM,), TEMPORAL_FACE)
    temporal[action_channels(BLINK_ACTIONS)] = TEMPORAL_BLINK
    slices = group_slices()
    for group in ("rotation", "translation", "gaze"):
        temporal[slices[group]] = TEMPORAL_POSE
    return weight, temporal


def augment(batch, rng: np.random.Generator):
    """The batch with random gaze offsets and head distances in some windows. A gaze offset
    moves the motion, the prefix and the gaze condition together, so the pairing stays true."""
    B = len(batch.motion)
    offset = rng.uniform(-GAZE_AUGMENT, GAZE_AUGMENT, size=(B, 2)).astype(np.float32)  # (B, 2)
    offset *= (rng.random(B) < GAZE_AUGMENT_PROBABILITY)[:, None]
    gaze = group_slices()["gaze"]
    motion, prefix = batch.motion.copy(), batch.prefix.copy()
    motion[:, :, gaze] += offset[:, None]
    prefix[:, :, gaze] += offset[:, None]
    low, high = np.log(DISTANCE_AUGMENT)
    new_distance = rng.uniform(low, high, size=(B, 1)).astype(np.float32)  # log scale, (B, 1)
    distance = np.where(rng.random((B, 1)) < DISTANCE_AUGMENT_PROBABILITY, new_distance, batch.globals_["distance"])
    globals_ = {**batch.globals_, "gaze": batch.globals_["gaze"] + offset, "distance": distance}
    return replace(batch, motion=motion, prefix=prefix, globals_=globals_)


def _conditions(model, batch, torch):
    from avatar.diffusion.conditions import Cond
    from avatar.diffusion.transformer import PREFIX

    values = {"audio": model.normalise_audio(torch.from_numpy(batch.audio)),
              PREFIX: model.normalise(torch.from_numpy(batch.prefix))}
    values.update(model.normalise_globals({k: torch.from_numpy(v) for k, v in batch.globals_.items()}))
    return Cond(values, {PREFIX: torch.from_numpy(batch.has_prefix)})


def _loss(model, batch, weight, temporal, torch, rng, train: bool, generator=None):
    from avatar.diffusion.edm import edm_loss
    from avatar.diffusion.guidance import dropout_conditions
    from avatar.diffusion.transformer import PREFIX

    cond = _conditions(model, batch, torch)
    if train:
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        cond = dropout_conditions(cond, {**COND_DROPOUT, PREFIX: PREFIX_DROPOUT}, g)
    x0 = model.normalise(torch.from_numpy(batch.motion))
    return edm_loss(model, x0, cond, generator=generator, weight=weight, temporal_weight=temporal).mean()


def _fixed_batch(srcs, picks, N, K, rng):
    """VAL_WINDOWS windows to measure a loss on: all of ``picks`` when there are fewer (each
    used several times, so it is measured at several noise levels), else a random subset."""
    if len(picks) >= VAL_WINDOWS:
        idx = rng.choice(len(picks), size=VAL_WINDOWS, replace=False)
    else:
        idx = np.resize(np.arange(len(picks)), VAL_WINDOWS)
    return cut(srcs, [picks[i] for i in idx], N, K)


def _validate(model, batch, weight, temporal, torch) -> float:
    model.eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(VAL_NOISE_SEED)  # the same noise every time
        v = float(_loss(model, batch, weight, temporal, torch, None, train=False, generator=g))
    model.train()
    return v


def _out_of_budget(step: int, t0: float, s: TrainSettings) -> bool:
    return (s.max_steps is not None and step >= s.max_steps) or (time.time() - t0) / 60 >= s.minutes
