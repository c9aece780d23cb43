"""Training the ``vlogger`` generator on prepared clips (``avatar train --method vlogger``).

Random windows of training frames, each cut to a random length of ``min_window`` to N
frames per batch (VLOGGER trains on variable lengths; the causal mask makes a shorter
window the start of a longer one). The sample is the motion vector followed by the
upper-body residuals (``clip.motion.upper_body``; NaN where the clip has no body track or a
joint was not seen: those values carry no loss, so talking-face clips teach the face and
head, upper-body videos the body as well).

Loss (VLOGGER §3.1): L_diff + L_temp on the x0 prediction, uniform over noise levels.
- L_diff = ||x0_hat - x0||^2 per channel, mouth channels weighted 3x and blinks 3x (as
  vasa: measured there; KeyFace's lambda_lower = 3);
- L_temp = lambda_temp ||diff_t x0_hat - diff_t x0||^2 with lambda_temp = 0.1 for facial
  expression (it must stay free to change fast: visemes turn over in 2-3 frames) and 1.0
  for head pose, gaze, blinks and the body (smooth, slow signals whose frame-to-frame jitter
  a viewer sees at once).
- Temporal outpainting is learnt by giving a random prefix of each window as known frames
  (none in KNOWN_NONE of the windows, so the first window is learnt too); known frames carry
  no loss.

``settings.init`` fine-tunes a trained checkpoint (personalisation on one person's video):
its configuration and normalisation are kept, only the weights move.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from avatar.errors import AvatarError
from avatar.generators.motion_vector import BODY_DIM, group_slices
from avatar.generators.vlogger import VloggerConfig, build_vlogger
from avatar.training.loop import TrainReport, TrainSettings, TrainTask, begin, fit
from avatar.training.vasa import COND_DROPOUT, GAZE_AUGMENT, GAZE_AUGMENT_PROBABILITY, TEMPORAL_POSE, \
    _loss_weights, augment
from avatar.training.windows import WindowSource, check_windows, fixed_picks, window_conditions, window_splits

KNOWN_NONE = 0.3  # share of training windows with no known frames (the first window of a video)
STD_FLOOR = 1e-3  # channels that never move (or have no data) must not blow up


@dataclass
class VloggerBatch:
    motion: np.ndarray  # (B, N, C) face + head + body; NaN where unknown
    audio: np.ndarray  # (B, N + 2k, Ca) raw audio, k frames beyond each side
    known: np.ndarray  # (B,) int: frames at the start given as known
    globals_: dict  # name -> (B, Cg)


def body_channels(clip) -> np.ndarray:
    """(T, BODY_DIM) upper-body residuals of a clip (``load_clip`` derives them from the body
    track), NaN where it has none."""
    body = clip.motion.upper_body
    if body is None:
        return np.full((len(clip.motion), BODY_DIM), np.nan, np.float32)
    return np.asarray(body, np.float32).reshape(len(body), BODY_DIM)


def with_body(srcs: list[WindowSource], clips) -> list[WindowSource]:
    """The window sources with each clip's body channels after its motion vector."""
    return [replace(s, motion=np.concatenate([s.motion, body_channels(c)], axis=1)) for s, c in zip(srcs, clips)]


def statistics(srcs) -> dict[str, np.ndarray]:
    """Per-channel mean and std of the training frames (NaN-aware: body channels exist only
    in some clips; a channel without data gets mean 0 and the floor std, so the model's
    untrained output on it stays ~0)."""
    motion = np.concatenate([s.motion[s.allowed] for s in srcs])
    audio = np.concatenate([s.audio[s.allowed] for s in srcs])
    seen = np.isfinite(motion).any(0)
    mean = np.where(seen, np.nanmean(np.where(seen, motion, 0.0), 0), 0.0)
    var = np.where(seen, np.nanvar(np.where(seen, motion, 0.0), 0), 0.0)
    var[group_slices()["gaze"]] += GAZE_AUGMENT_PROBABILITY * GAZE_AUGMENT**2 / 3  # + the augmentation offsets' variance
    return {"mean": mean, "std": np.maximum(np.sqrt(var), STD_FLOOR),
            "audio_mean": audio.mean(0), "audio_std": np.maximum(audio.std(0), STD_FLOOR)}


def cut_windows(srcs, picks, N: int, k: int, rng: np.random.Generator) -> VloggerBatch:
    """The windows (clip index, start) with k audio frames beyond each side and a random
    number of known frames."""
    motion, audio, glob = [], [], []
    for i, s in picks:
        src = srcs[i]
        motion.append(src.motion[s:s + N])
        audio.append(src.audio[np.clip(np.arange(s - k, s + N + k), 0, len(src.audio) - 1)])
        glob.append(window_conditions(src.seq.slice(s, s + N)))
    B = len(picks)
    known = np.where(rng.random(B) < KNOWN_NONE, 0, rng.integers(1, N, size=B))
    return VloggerBatch(np.stack(motion).astype(np.float32), np.stack(audio).astype(np.float32), known,
                        {n: np.stack([g[n] for g in glob]) for n in glob[0]})


def crop(batch: VloggerBatch, length: int, k: int) -> VloggerBatch:
    """The first ``length`` frames of every window (known frames capped below it)."""
    return replace(batch, motion=batch.motion[:, :length], audio=batch.audio[:, :length + 2 * k],
                   known=np.minimum(batch.known, length - 1))


def train_vlogger(clips, out_path, config: VloggerConfig = VloggerConfig(),
                  settings: TrainSettings = TrainSettings(), log=print, on_evaluation=None) -> TrainReport:
    """Train on ``clips`` (avatar.data.Clip) and write the kept model to ``out_path``."""
    import torch

    fps, n_mels = begin(clips, settings)
    config = replace(config, fps=fps, n_mels=n_mels)
    if settings.init is not None:
        model = _initial(settings.init, fps, n_mels)
        config = replace(config, **{f: model.config[f] for f in ("window", "audio_context", "min_window")})
    N, k = config.window, config.audio_context
    splits, (train_picks, select_picks, held_picks) = window_splits(clips, N)
    train, select, held = (with_body(srcs, clips) for srcs in splits)
    check_windows(train_picks, select_picks, N, fps)
    with_bodies = sum(np.isfinite(body_channels(c)).any() for c in clips)
    log(f"{len(train_picks)} training windows of up to {N} frames ({with_bodies} of {len(clips)} clips with a body "
        f"track); selection: {len(select_picks)}; held-out (reported only): {len(held_picks)}")
    if settings.init is None:
        model = build_vlogger(config, **statistics(train))
    else:
        log(f"fine-tuning {settings.init} (its normalisation and settings kept)")
    weight, temporal = loss_weights(torch)

    def sample(rng):
        picks = [train_picks[i] for i in rng.integers(len(train_picks), size=settings.batch)]
        length = int(rng.integers(min(config.min_window, N), N + 1))  # variable length (VLOGGER)
        return augment(crop(cut_windows(train, picks, N, k, rng), length, k), rng)

    def loss(batch, noise, rng):
        return vlogger_loss(model, batch, weight, temporal, rng, noise)

    def fixed(srcs, picks):
        rng = np.random.default_rng(settings.seed)
        return cut_windows(srcs, fixed_picks(picks, rng), N, k, rng) if picks else None

    task = TrainTask(model, sample, loss, select=fixed(select, select_picks), held_out=fixed(held, held_picks))
    return fit(task, out_path, settings, log=log, on_evaluation=on_evaluation)


def _initial(path, fps: float, n_mels: int):
    from avatar.diffusion.checkpoint import load_model

    model = load_model(path)
    if getattr(model, "kind", None) != "vlogger":
        raise AvatarError(f"not a vlogger checkpoint (it holds a {getattr(model, 'kind', '?')} model)", str(path),
                          "fine-tune a checkpoint made by avatar train --method vlogger")
    if abs(model.config["fps"] - fps) > 1e-6 or model.config["n_mels"] != n_mels:
        raise AvatarError(f"the checkpoint was trained at {model.config['fps']:g} fps with {model.config['n_mels']} "
                          f"mel bands, the dataset has {fps:g} fps and {n_mels}", str(path),
                          f"prepare the dataset with --fps {model.config['fps']:g}")
    return model


def loss_weights(torch):
    """(C,) L_diff and L_temp weights: vasa's for the face and head, body smooth as the head."""
    weight, temporal = _loss_weights(torch)
    return (torch.cat([weight, torch.ones(BODY_DIM)]),
            torch.cat([temporal, torch.full((BODY_DIM,), TEMPORAL_POSE)]))


def vlogger_conditions(model, batch: VloggerBatch, x0, rng):
    """The Cond of a batch (x0: normalised motion with unknowns zeroed); with ``rng``
    (training) conditions are dropped at random for classifier-free guidance."""
    import torch

    from avatar.diffusion.conditions import Cond
    from avatar.diffusion.guidance import dropout_conditions
    from avatar.generators.normalised import stack_audio
    from avatar.generators.vlogger_model import KNOWN, known_condition

    B, T = x0.shape[:2]
    known = torch.arange(T)[None] < torch.from_numpy(batch.known)[:, None]  # (B, T)
    audio = stack_audio(model.normalise_audio(torch.from_numpy(batch.audio)), model.config["audio_context"])
    values = {"audio": audio, KNOWN: known_condition(x0, known)}
    values.update(model.normalise_globals({n: torch.from_numpy(v) for n, v in batch.globals_.items()}))
    cond = Cond(values)
    if rng is not None:
        cond = dropout_conditions(cond, COND_DROPOUT, torch.Generator().manual_seed(int(rng.integers(2**31))))
    return cond, known


def vlogger_loss(model, batch: VloggerBatch, weight, temporal, rng, generator=None):
    """L_diff + L_temp over the frames to generate and the values that exist."""
    import torch

    from avatar.diffusion.edm import edm_loss

    motion = torch.from_numpy(batch.motion)
    valid = torch.isfinite(motion)  # (B, T, C)
    x0 = torch.where(valid, model.normalise(torch.nan_to_num(motion)), torch.zeros(()))
    cond, known = vlogger_conditions(model, batch, x0, rng)
    charged = valid & ~known[..., None]  # (B, T, C)
    steps = charged & torch.nn.functional.pad(charged[:, :-1], (0, 0, 1, 0))  # both frames of a difference
    loss = edm_loss(model, x0, cond, generator=generator, weight=weight * charged, sigma_weighting=False,
                    temporal_weight=temporal * steps)
    return loss.sum() / charged.sum().clamp(min=1)
