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

from dataclasses import replace

import numpy as np

from avatar.generators.motion_vector import MOTION_DIM, MOUTH_ACTIONS, action_channels, group_slices
from avatar.generators.vasa import VasaConfig, build_vasa
from avatar.motion.types import BLINK_ACTIONS
from avatar.training.loop import TrainReport, TrainSettings, TrainTask, begin, fit
from avatar.training.windows import check_windows, cut, fixed_picks, window_splits

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


def train_vasa(clips, out_path, config: VasaConfig = VasaConfig(), settings: TrainSettings = TrainSettings(),
               log=print, on_evaluation=None) -> TrainReport:
    """Train on ``clips`` (avatar.data.Clip) and write the kept model (``settings.keep``) to
    ``out_path``. ``on_evaluation(model, evaluation)``, if given, is called after every
    evaluation."""
    import torch

    fps, n_mels = begin(clips, settings)
    config = replace(config, fps=fps, n_mels=n_mels)  # the model takes the data's frame rate and bands
    N, K = config.window, config.prefix
    (train, select, held), (train_picks, select_picks, held_picks) = window_splits(clips, N)
    check_windows(train_picks, select_picks, N, fps)
    log(f"{len(train_picks)} training windows; selection: {len(select_picks)} windows of "
        f"{len({i for i, _ in select_picks})} clip(s); held-out (reported only): {len(held_picks)}")
    model = build_vasa(config, **_statistics(train))
    weight, temporal = _loss_weights(torch)

    def sample(rng):
        picks = [train_picks[i] for i in rng.integers(len(train_picks), size=settings.batch)]
        return augment(cut(train, picks, N, K), rng)

    def loss(batch, noise, rng):
        return _loss(model, batch, weight, temporal, torch, rng, generator=noise)

    # the fixed batches are cut with their own generators: training draws do not depend on them
    task = TrainTask(model, sample, loss,
                     select=cut(select, fixed_picks(select_picks, np.random.default_rng(settings.seed)), N, K),
                     held_out=cut(held, fixed_picks(held_picks, np.random.default_rng(settings.seed)), N, K)
                     if held_picks else None)
    return fit(task, out_path, settings, log=log, on_evaluation=on_evaluation)


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

    def shifted(frames):  # (B, N, C) with the gaze offset
        frames = frames.copy()
        frames[:, :, gaze] += offset[:, None]
        return frames

    low, high = np.log(DISTANCE_AUGMENT)
    new_distance = rng.uniform(low, high, size=(B, 1)).astype(np.float32)  # log scale, (B, 1)
    distance = np.where(rng.random((B, 1)) < DISTANCE_AUGMENT_PROBABILITY, new_distance, batch.globals_["distance"])
    globals_ = {**batch.globals_, "gaze": batch.globals_["gaze"] + offset, "distance": distance}
    frames = {name: shifted(getattr(batch, name)) for name in ("motion", "prefix") if hasattr(batch, name)}
    return replace(batch, globals_=globals_, **frames)


def _conditions(model, batch, torch):
    from avatar.diffusion.conditions import Cond
    from avatar.diffusion.transformer import PREFIX

    values = {"audio": model.normalise_audio(torch.from_numpy(batch.audio)),
              PREFIX: model.normalise(torch.from_numpy(batch.prefix))}
    values.update(model.normalise_globals({k: torch.from_numpy(v) for k, v in batch.globals_.items()}))
    return Cond(values, {PREFIX: torch.from_numpy(batch.has_prefix)})


def _loss(model, batch, weight, temporal, torch, rng, generator=None):
    """EDM loss of a batch; ``rng`` None (a fixed batch) means no condition dropout."""
    from avatar.diffusion.edm import edm_loss
    from avatar.diffusion.guidance import dropout_conditions
    from avatar.diffusion.transformer import PREFIX

    cond = _conditions(model, batch, torch)
    if rng is not None:
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        cond = dropout_conditions(cond, {**COND_DROPOUT, PREFIX: PREFIX_DROPOUT}, g)
    x0 = model.normalise(torch.from_numpy(batch.motion))
    return edm_loss(model, x0, cond, generator=generator, weight=weight, temporal_weight=temporal).mean()
