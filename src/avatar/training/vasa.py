"""Training the ``vasa`` generator on prepared clips (``avatar train --method vasa``).

EDM training (Karras et al. 2022) of the motion transformer on random training windows
(previous-window motion and audio included):
each condition dropped at random (for classifier-free guidance), mouth channels weighted
up (KeyFace's lambda_lower = 3), a temporal loss that keeps head pose smoother than
expression (VLOGGER's lambda_temp). The loss on selection windows (a block of training
time never trained on; fixed noise, so evaluations compare) picks the checkpoint that is
kept: the clips' validation ranges are left for ``avatar evaluate``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from avatar.errors import AvatarError
from avatar.generators.vasa import (MOTION_DIM, MOUTH_ACTIONS, VasaConfig, action_channels,
                                    build_vasa, group_slices)
from avatar.training.windows import cut, sources, window_starts

MOUTH_WEIGHT = 3.0  # KeyFace: lambda_lower = 3 on the lower face
TEMPORAL_POSE = 1.0  # VLOGGER-style temporal loss: head pose and gaze smooth...
TEMPORAL_FACE = 0.1  # ...expression freer
COND_DROPOUT = {"audio": 0.1, "gaze": 0.1, "distance": 0.1, "emotion": 0.1}
PREFIX_DROPOUT = 0.2  # also trains the first window, which has no previous frames
VAL_NOISE_SEED = 12345
VAL_WINDOWS = 64


@dataclass
class TrainSettings:
    minutes: float = 30.0  # wall-clock budget
    max_steps: int | None = None
    batch: int = 32
    lr: float = 3e-4
    eval_every: int = 100
    patience: int = 15  # evaluations without a better validation loss before stopping
    seed: int = 0
    threads: int = 2


def train_vasa(clips, out_path, config: VasaConfig = VasaConfig(), settings: TrainSettings = TrainSettings(),
               log=print) -> dict:
    """Train on ``clips`` (avatar.data.Clip), keep the best checkpoint at ``out_path``."""
    import torch

    from avatar.diffusion.checkpoint import save_model

    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    rates = sorted({float(c.fps) for c in clips})
    if len(rates) > 1:
        raise AvatarError(f"the dataset mixes frame rates {rates}", None,
                          "prepare it again with one rate, e.g. avatar prepare --fps 25 ...")
    config = replace(config, fps=rates[0])
    train, val = sources(clips, "train"), sources(clips, "select")
    N, K = config.window, config.prefix
    train_picks = _all_starts(train, N, K)
    val_picks = _all_starts(val, N, K)
    if not train_picks:
        raise AvatarError(f"no training window of {N} frames in the dataset", None,
                          "prepare longer videos, or more of them")
    stats = _statistics(train)
    model = build_vasa(config, **stats)
    rng = np.random.default_rng(settings.seed)
    val_batch = _val_batch(val or train, val_picks or train_picks, N, K, rng)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    weight, temporal = _loss_weights(torch)
    best, since_best, step, t0 = float("inf"), 0, 0, time.time()
    history = []
    while True:
        picks = [train_picks[i] for i in rng.integers(len(train_picks), size=settings.batch)]
        loss = _loss(model, cut(train, picks, N, K), weight, temporal, torch, rng, train=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % settings.eval_every == 0:
            v = _validate(model, val_batch, weight, temporal, torch)
            history.append((step, time.time() - t0, loss.item(), v))
            log(f"step {step}: train {loss.item():.4f}  val {v:.4f}  ({(time.time() - t0) / 60:.1f} min)")
            if v < best:
                best, since_best = v, 0
                save_model(out_path, model, extra={"step": step, "val_loss": v,
                                                   "minutes": (time.time() - t0) / 60})
            else:
                since_best += 1
        if _done(step, t0, since_best, settings):
            break
    return {"steps": step, "best_val": best, "minutes": (time.time() - t0) / 60, "history": history}


def _all_starts(srcs, N, K) -> list[tuple[int, int]]:
    return [(i, int(s)) for i, src in enumerate(srcs) for s in window_starts(src, N, K)]


def _statistics(srcs) -> dict[str, np.ndarray]:
    motion = np.concatenate([s.motion[s.allowed] for s in srcs])
    audio = np.concatenate([s.audio[s.allowed] for s in srcs])
    floor = 1e-3  # channels that never move in the data must not blow up
    return {"mean": motion.mean(0), "std": np.maximum(motion.std(0), floor),
            "audio_mean": audio.mean(0), "audio_std": np.maximum(audio.std(0), floor)}


def _loss_weights(torch):
    weight = torch.ones(MOTION_DIM)
    weight[action_channels(MOUTH_ACTIONS)] = MOUTH_WEIGHT
    temporal = torch.full((MOTION_DIM,), TEMPORAL_FACE)
    slices = group_slices()
    for group in ("rotation", "translation", "gaze"):
        temporal[slices[group]] = TEMPORAL_POSE
    return weight, temporal


def _conditions(model, batch, torch):
    from avatar.diffusion.conditions import Cond
    from avatar.diffusion.transformer import PREFIX

    values = {"audio": model.normalise_audio(torch.from_numpy(batch.audio)),
              PREFIX: model.normalise(torch.from_numpy(batch.prefix))}
    values.update({k: torch.from_numpy(v) for k, v in batch.globals_.items()})
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


def _val_batch(srcs, picks, N, K, rng):
    idx = rng.choice(len(picks), size=min(VAL_WINDOWS, len(picks)), replace=False)
    return cut(srcs, [picks[i] for i in idx], N, K)


def _validate(model, batch, weight, temporal, torch) -> float:
    model.eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(VAL_NOISE_SEED)  # the same noise every time
        v = float(_loss(model, batch, weight, temporal, torch, None, train=False, generator=g))
    model.train()
    return v


def _done(step, t0, since_best, s: TrainSettings) -> bool:
    if s.max_steps is not None and step >= s.max_steps:
        return True
    return (time.time() - t0) / 60 >= s.minutes or since_best >= s.patience
