"""Training AuMoCLIP (TANGO §3.2) on one person's paired audio and motion.

Batches are random windows of GESTURE.window_seconds from the training frames of the
sequences (shorter sequences are padded and masked). Each step optimises the local
frame-wise loss plus the global CLS InfoNCE; the global loss reaches only the high-level
encoders (stop-gradient, see avatar.gesture.aumoclip). Windows of the same sequence
starting less than half a window apart share most of their frames, so they are not used
as each other's global negatives. With ``val_fraction`` the last part of every sequence
is never trained on; its loss is logged and the best weights (by that loss) are kept.
Deterministic for a seed as long as the step budget, not the time budget, ends training.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from avatar.errors import AvatarError
from avatar.gesture.aumoclip import AuMoCLIP, AuMoCLIPConfig, aumoclip_loss, flat_motion
from avatar.native import torch_threads

Log = Callable[[str], None]
MIN_SEPARATION = 0.5  # share of a window: closer windows of one sequence are not negatives
VAL_WINDOWS = 32  # fixed validation windows (evenly spread over the held-out frames)
# Machines here have 2 cores shared with other jobs; small convolutions run fastest (and
# reproducibly) on one thread.
DEFAULT_THREADS = 1


@dataclass
class AuMoCLIPSettings:
    # Budgets: whichever ends first. On 38 s of video, 400 steps of 8 windows beat 2 minutes
    # of 16 (held-out low level 35 % vs 31 %): beyond that the model memorises the clips.
    steps: int = 400
    minutes: float = 2.0
    batch: int = 8  # windows per step
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    val_fraction: float = 0.0  # the last share of every sequence held out (0: none)
    eval_every: int = 100  # steps between validation losses / log lines
    width: int = 32  # model size (AuMoCLIPConfig); 64 measured no better on minutes of data
    embed_dim: int = 32
    stop_gradient: bool = True  # TANGO §3.2; False for the Table 3 "split low + high" ablation
    global_weight: float = 1.0
    # Regularisation for minutes of one person's data. Measured on the upper-body clips
    # (benchmarks/bench_retrieval.py, 5-fold held-out low level): dropout 0.1 / noise 0.05
    # 28 %, 0.3 / 0.2 32 %, 0.5 / 0.5 34 %, 0.5 / 1.0 35 % (2 seeds), 0.5 / 2.0 30 %.
    dropout: float = 0.5  # on the inputs and inside the transformer (AuMoCLIPConfig)
    noise: float = 1.0  # std of Gaussian noise added to the normalised inputs while training
    threads: int = DEFAULT_THREADS


@dataclass
class _Source:
    """One sequence's arrays and its usable (training or validation) frame range."""

    audio: np.ndarray  # (T, Fa)
    motion: np.ndarray  # (T, J * 15)
    start: int  # usable frames [start, end)
    end: int


@dataclass
class _Batch:
    audio: torch.Tensor  # (B, W, Fa)
    motion: torch.Tensor  # (B, W, J * 15)
    valid: torch.Tensor  # (B, W) bool
    exclude: torch.Tensor  # (B, B) bool: pairs that are not global negatives


def _sources(sequences, val_fraction: float) -> tuple[list[_Source], list[_Source]]:
    """Training and validation parts of every (audio, motion) sequence."""
    train, val = [], []
    for k, (audio, motion) in enumerate(sequences):
        audio, motion = np.asarray(audio, np.float32), flat_motion(motion)
        if len(audio) != len(motion):
            raise AvatarError(f"sequence {k}: {len(audio)} audio frames but {len(motion)} motion frames",
                              "sequences", "cut audio and motion to the same frames")
        T = len(audio)
        cut = T - int(round(val_fraction * T))
        train.append(_Source(audio, motion, 0, cut))
        if cut < T:
            val.append(_Source(audio, motion, cut, T))
    return [s for s in train if s.end > s.start], val


def _window_starts(source: _Source, window: int) -> np.ndarray:
    """Starts of the windows inside the usable range (one padded window if it is short)."""
    last = max(source.start, source.end - window)
    return np.arange(source.start, last + 1)


def _cut(sources: Sequence[_Source], picks: Sequence[tuple[int, int]], window: int) -> _Batch:
    """Windows (source index, start) -> a batch; frames past the usable range are padding."""
    W = window
    audio = np.zeros((len(picks), W, sources[0].audio.shape[1]), np.float32)
    motion = np.zeros((len(picks), W, sources[0].motion.shape[1]), np.float32)
    valid = np.zeros((len(picks), W), bool)
    for b, (k, s) in enumerate(picks):
        src = sources[k]
        n = min(W, src.end - s)
        audio[b, :n], motion[b, :n], valid[b, :n] = src.audio[s:s + n], src.motion[s:s + n], True
    seq = np.array([k for k, _ in picks])
    start = np.array([s for _, s in picks])
    exclude = (seq[:, None] == seq[None]) & (np.abs(start[:, None] - start[None]) < MIN_SEPARATION * W)
    return _Batch(torch.from_numpy(audio), torch.from_numpy(motion), torch.from_numpy(valid),
                  torch.from_numpy(exclude))


class _Sampler:
    """Random training windows, every start equally likely."""

    def __init__(self, sources: Sequence[_Source], window: int, seed: int):
        self.sources, self.window = list(sources), window
        self.picks = [(k, int(s)) for k, src in enumerate(self.sources) for s in _window_starts(src, window)]
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int) -> _Batch:
        chosen = self.rng.choice(len(self.picks), size=batch, replace=len(self.picks) < batch)
        return _cut(self.sources, [self.picks[i] for i in chosen], self.window)


def _val_batch(sources: Sequence[_Source], window: int) -> _Batch | None:
    """Up to VAL_WINDOWS windows spread evenly over the validation frames."""
    picks = [(k, int(s)) for k, src in enumerate(sources) for s in _window_starts(src, window)]
    if not picks:
        return None
    index = np.unique(np.linspace(0, len(picks) - 1, min(VAL_WINDOWS, len(picks))).round().astype(int))
    return _cut(sources, [picks[i] for i in index], window)


def _build_model(train: Sequence[_Source], fps: float, settings: AuMoCLIPSettings) -> AuMoCLIP:
    """A fresh model sized for the data, its input statistics from the training frames."""
    config = AuMoCLIPConfig.for_fps(fps, train[0].audio.shape[1], train[0].motion.shape[1],
                                    width=settings.width, embed_dim=settings.embed_dim,
                                    stop_gradient=settings.stop_gradient, global_weight=settings.global_weight,
                                    dropout=settings.dropout)
    model = AuMoCLIP(config)
    model.set_normalisation(np.concatenate([s.audio[s.start:s.end] for s in train]),
                            np.concatenate([s.motion[s.start:s.end] for s in train]))
    return model


def _noisy(batch: _Batch, model: AuMoCLIP, noise: float, generator: torch.Generator) -> _Batch:
    """The batch with Gaussian noise of ``noise`` (in normalised units) on the inputs."""
    if noise <= 0:
        return batch
    a = batch.audio + noise * model.audio.std * torch.randn(batch.audio.shape, generator=generator)
    m = batch.motion + noise * model.motion.std * torch.randn(batch.motion.shape, generator=generator)
    return _Batch(a, m, batch.valid, batch.exclude)


def _validate(model: AuMoCLIP, batch: _Batch) -> float:
    model.eval()
    with torch.no_grad():
        value = float(aumoclip_loss(model, batch.audio, batch.motion, batch.valid, batch.exclude).total)
    model.train()
    return value


def train_aumoclip(sequences: Sequence[tuple[np.ndarray, np.ndarray]], fps: float,
                   settings: AuMoCLIPSettings = AuMoCLIPSettings(), log: Log | None = print,
                   progress: bool = True) -> AuMoCLIP:
    """An AuMoCLIP model trained on paired sequences [(audio (T, Fa), motion (T, J, 15))]
    at ``fps`` (every sequence at that rate); returned in eval mode."""
    from tqdm import tqdm

    train, val = _sources(sequences, settings.val_fraction)
    if not train:
        raise AvatarError("no training frames", "sequences", "give at least one non-empty sequence")
    torch.manual_seed(settings.seed)
    model = _build_model(train, fps, settings)
    window = model.config.window
    sampler = _Sampler(train, window, settings.seed)
    val_batch = _val_batch(val, window)
    generator = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.steps, pct_start=0.05)
    best, best_state, t0 = float("inf"), None, time.perf_counter()
    with torch_threads(settings.threads), tqdm(total=settings.steps, desc="AuMoCLIP", unit="step",
                                               disable=not progress) as bar:
        model.train()
        for step in range(1, settings.steps + 1):
            batch = _noisy(sampler.sample(settings.batch), model, settings.noise, generator)
            losses = aumoclip_loss(model, batch.audio, batch.motion, batch.valid, batch.exclude)
            opt.zero_grad()
            losses.total.backward()
            opt.step()
            sched.step()
            bar.update()
            out_of_time = (time.perf_counter() - t0) / 60 >= settings.minutes
            if step % settings.eval_every == 0 or step == settings.steps or out_of_time:
                v = _validate(model, val_batch) if val_batch is not None else float("nan")
                if val_batch is not None and v < best:
                    best, best_state = v, copy.deepcopy(model.state_dict())
                if log:
                    log(f"AuMoCLIP step {step}: local {losses.local.item():.3f} global "
                        f"{losses.global_.item():.3f} val {v:.3f} ({time.perf_counter() - t0:.0f} s)")
            if out_of_time:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


__all__ = ["AuMoCLIPSettings", "train_aumoclip"]
