"""The training loop every learned generator shares (``avatar train --method NAME``).

A generator's trainer builds a :class:`TrainTask` (its model, how to draw a training
batch, its loss, and fixed selection / held-out batches) and hands it to :func:`fit`,
which runs AdamW for a budget of steps or minutes, measures both fixed batches every
``eval_every`` steps (the same noise each time, so evaluations compare), and writes the
kept model (``keep="last"``, or the lowest selection loss with early stopping) atomically
to the checkpoint. The held-out loss is reported only: nothing is chosen by it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from avatar.errors import AvatarError

KEEP = ("last", "best")
VAL_NOISE_SEED = 12345


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
    init: str | None = None  # fine-tune this checkpoint instead of a fresh model (trainers that can)


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
class TrainTask:
    """What :func:`fit` trains.

    ``loss(batch, noise, rng)`` is the scalar training loss of a batch; ``noise`` is a
    torch.Generator for the diffusion noise (None: global RNG) and ``rng`` the numpy
    generator for training-time randomness such as condition dropout (None when the loss
    is measured on a fixed batch: no dropout).
    """

    model: Any  # nn.Module
    sample: Callable[[np.random.Generator], Any]  # rng -> a training batch
    loss: Callable[[Any, Any, "np.random.Generator | None"], Any]
    select: Any  # fixed batch: picks the checkpoint with keep="best"
    held_out: Any | None = None  # fixed batch of the validation ranges: reported only


def check_settings(settings: TrainSettings) -> None:
    if settings.keep not in KEEP:
        raise AvatarError(f"unknown choice of the model to keep {settings.keep!r}", "--keep", f"use one of {KEEP}")


def check_clips(clips) -> tuple[float, int]:
    """(fps, mel bands) shared by every clip of a dataset; AvatarError if they differ."""
    rates = sorted({float(c.fps) for c in clips})
    if len(rates) > 1:
        raise AvatarError(f"the dataset mixes frame rates {rates}", None,
                          "prepare it again with one rate, e.g. avatar prepare --fps 25 ...")
    bands = sorted({c.features.mel.shape[1] for c in clips})
    if len(bands) > 1:
        raise AvatarError(f"the dataset mixes audio features of {bands} mel bands", None,
                          "prepare all its videos with the same version of avatar")
    return rates[0], bands[0]


def begin(clips, settings: TrainSettings) -> tuple[float, int]:
    """Check the settings and the data, seed torch and set its threads: (fps, mel bands)."""
    import torch

    check_settings(settings)
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    return check_clips(clips)


def fit(task: TrainTask, out_path, settings: TrainSettings, log=print, on_evaluation=None,
        on_step=None, extra: dict | None = None) -> TrainReport:
    """Train ``task.model`` and write the kept model to ``out_path``.

    ``on_evaluation(model, evaluation)`` runs after every evaluation, ``on_step(model,
    step)`` after every optimiser step; ``extra`` is saved in the checkpoint's metadata.
    """
    import torch

    from avatar.diffusion.checkpoint import save_model

    check_settings(settings)
    model = task.model
    rng = np.random.default_rng(settings.seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    best, kept, since_best, step, t0 = None, None, 0, 0, time.time()
    history: list[Evaluation] = []
    model.train()
    while True:
        loss = task.loss(task.sample(rng), None, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if on_step is not None:
            on_step(model, step)
        out_of_budget = _out_of_budget(step, t0, settings)
        if step % settings.eval_every == 0 or out_of_budget:  # the last model is always measured
            e = Evaluation(step, (time.time() - t0) / 60, loss.item(), measure(task, task.select),
                           measure(task, task.held_out) if task.held_out is not None else float("nan"))
            history.append(e)
            if on_evaluation is not None:
                on_evaluation(model, e)
            log(f"step {step}: train {e.train:.4f}  select {e.select:.4f}  held-out {e.held_out:.4f}  "
                f"({e.minutes:.1f} min)")
            improved = best is None or e.select < best.select
            best, since_best = (e, 0) if improved else (best, since_best + 1)
            if improved or settings.keep == "last":
                kept = e
                save_model(out_path, model, extra={**(extra or {}), "step": step, "val_loss": e.select,
                                                   "held_out_loss": e.held_out, "minutes": e.minutes})
        if out_of_budget or (settings.keep == "best" and since_best >= settings.patience):
            break
    return TrainReport(step, (time.time() - t0) / 60, kept, history)


def measure(task: TrainTask, batch) -> float:
    """The loss of a fixed batch with fixed noise, in eval mode."""
    import torch

    task.model.eval()
    with torch.no_grad():
        value = float(task.loss(batch, torch.Generator().manual_seed(VAL_NOISE_SEED), None))
    task.model.train()
    return value


def _out_of_budget(step: int, t0: float, s: TrainSettings) -> bool:
    return (s.max_steps is not None and step >= s.max_steps) or (time.time() - t0) / 60 >= s.minutes
