"""Training the ``loopy`` generator on prepared clips (``avatar train --method loopy``).

EDM training of the clip denoiser on random clips of N training frames, each with the L
real frames before it (as many as lie in the same split) as motion context:

- the context is cut short at random (CONTEXT_TRUNCATION), so the model learns the start
  of a sequence and every length of history it meets while generating (the first clips
  of a sequence see little or none); it is dropped as a whole like vasa's prefix;
- audio-to-latents (Loopy §3.3): in half of the clips the latent bank is queried by the
  motion signals of the real clip instead of its audio;
- conditions dropped at random for classifier-free guidance, mouth channels weighted 3x,
  blinks and VLOGGER's temporal loss, gaze and distance augmentation: all as vasa.

The selection and held-out losses are measured as the model samples: full context,
latents queried by audio.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from avatar.generators.loopy import LoopyConfig, build_loopy
from avatar.training.loop import TrainReport, TrainSettings, TrainTask, begin, fit
from avatar.training.vasa import COND_DROPOUT, PREFIX_DROPOUT, _loss_weights, _statistics, augment
from avatar.training.windows import check_windows, fixed_picks, window_conditions, window_splits

CONTEXT_TRUNCATION = 0.5  # share of training clips whose context is cut to a random length


@dataclass
class LoopyBatch:
    motion: np.ndarray  # (B, N, C)
    prefix: np.ndarray  # (B, L, C) motion context, oldest first (zeros where missing)
    has_prefix: np.ndarray  # (B,) any context at all
    prefix_frames: np.ndarray  # (B, L) 1.0 where a context frame is real
    audio: np.ndarray  # (B, N + 2k, Ca) raw audio, k frames beyond each side
    globals_: dict  # name -> (B, Cg)


def context_available(allowed: np.ndarray, s: int, L: int) -> int:
    """How many frames right before ``s`` (up to L) are allowed, without a gap."""
    before = allowed[max(0, s - L):s]
    gaps = np.flatnonzero(~before)
    return len(before) - (gaps[-1] + 1) if len(gaps) else len(before)


def cut_clips(srcs, picks, config: dict, rng: np.random.Generator | None = None) -> LoopyBatch:
    """The clips (clip index, start) with their context; ``rng`` truncates contexts at random."""
    from avatar.generators.loopy_model import context_length

    N, k, L = config["clip"], config["audio_context"], context_length(config)
    C = srcs[0].motion.shape[1]
    out = {name: [] for name in ("motion", "prefix", "frames", "audio", "globals")}
    for i, s in picks:
        src = srcs[i]
        n = context_available(src.allowed, s, L)
        if rng is not None and rng.random() < CONTEXT_TRUNCATION:
            n = int(rng.integers(0, n + 1))
        context = np.zeros((L, C), np.float32)
        frames = np.zeros(L, np.float32)
        if n:
            context[L - n:], frames[L - n:] = src.motion[s - n:s], 1.0
        out["motion"].append(src.motion[s:s + N])
        out["prefix"].append(context)
        out["frames"].append(frames)
        out["audio"].append(src.audio[np.clip(np.arange(s - k, s + N + k), 0, len(src.audio) - 1)])
        out["globals"].append(window_conditions(src.seq.slice(s, s + N)))
    g = out["globals"]
    frames = np.stack(out["frames"])
    return LoopyBatch(np.stack(out["motion"]), np.stack(out["prefix"]), frames.any(1), frames,
                      np.stack(out["audio"]).astype(np.float32), {n: np.stack([x[n] for x in g]) for n in g[0]})


def train_loopy(clips, out_path, config: LoopyConfig = LoopyConfig(), settings: TrainSettings = TrainSettings(),
                log=print, on_evaluation=None) -> TrainReport:
    """Train on ``clips`` (avatar.data.Clip) and write the kept model to ``out_path``."""
    import torch

    fps, n_mels = begin(clips, settings)
    config = replace(config, fps=fps, n_mels=n_mels)
    N = config.clip
    (train, select, held), (train_picks, select_picks, held_picks) = window_splits(clips, N)
    check_windows(train_picks, select_picks, N, fps)
    log(f"{len(train_picks)} training clips of {N} frames; selection: {len(select_picks)}; "
        f"held-out (reported only): {len(held_picks)}")
    model = build_loopy(config, **_statistics(train))
    weight, temporal = _loss_weights(torch)
    cfg = model.config

    def sample(rng):
        picks = [train_picks[i] for i in rng.integers(len(train_picks), size=settings.batch)]
        return augment(cut_clips(train, picks, cfg, rng), rng)

    def loss(batch, noise, rng):
        return loopy_loss(model, batch, weight, temporal, rng, noise)

    def fixed(srcs, picks):
        return cut_clips(srcs, fixed_picks(picks, np.random.default_rng(settings.seed)), cfg) if picks else None

    task = TrainTask(model, sample, loss, select=fixed(select, select_picks), held_out=fixed(held, held_picks))
    return fit(task, out_path, settings, log=log, on_evaluation=on_evaluation)


def loopy_conditions(model, batch: LoopyBatch, x0, rng):
    """The Cond of a batch; with ``rng`` (training) the motion-signal queries and dropout."""
    import torch

    from avatar.diffusion.conditions import Cond
    from avatar.diffusion.guidance import dropout_conditions
    from avatar.generators.loopy_model import CONTEXT, CONTEXT_FRAMES, SIGNALS, motion_signals

    B = len(batch.motion)
    values = {"audio": model.normalise_audio(torch.from_numpy(batch.audio)),
              CONTEXT: model.normalise(torch.from_numpy(batch.prefix)),
              CONTEXT_FRAMES: torch.from_numpy(batch.prefix_frames), SIGNALS: motion_signals(x0)}
    values.update(model.normalise_globals({k: torch.from_numpy(v) for k, v in batch.globals_.items()}))
    if rng is None:  # measured as it samples: latents queried by audio
        return Cond(values, {SIGNALS: torch.zeros(B, dtype=torch.bool)})
    query = torch.from_numpy(rng.random(B) < model.config["motion_query_probability"])
    cond = Cond(values, {SIGNALS: query})
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    return dropout_conditions(cond, {**COND_DROPOUT, CONTEXT: PREFIX_DROPOUT}, g)


def loopy_loss(model, batch: LoopyBatch, weight, temporal, rng, generator=None):
    """EDM loss of a batch; ``rng`` None (a fixed batch) means no dropout and audio queries."""
    import torch

    from avatar.diffusion.edm import edm_loss

    x0 = model.normalise(torch.from_numpy(batch.motion))
    cond = loopy_conditions(model, batch, x0, rng)
    return edm_loss(model, x0, cond, generator=generator, weight=weight, temporal_weight=temporal).mean()
