"""Training the ``keyface`` generator on prepared clips (``avatar train --method keyface``).

One step trains both stages (the loss is their sum; KeyFace trains them apart, here they
share the batch budget of one run):

- keyframe stage (KeyFace §3.2): windows of T keyframes S frames apart, with the P
  keyframes before them as prefix; each keyframe sees the S audio frames centred on it and
  its own valence/arousal, the emotion stand-ins of
  :func:`~avatar.generators.motion_vector.emotion_proxy` over the EMOTION_SECONDS around
  it (:func:`emotion_track`); conditions dropped at random for classifier-free guidance;
  gaze and distance augmented as vasa does;
- interpolation stage (KeyFace §3.3): random stretches of S+1 frames whose first and last
  frames are given, the rest filled; VLOGGER's temporal loss as in vasa.

Both weight the mouth channels 3x (KeyFace §3.6, lambda_lower = 3) and blinks as vasa.
Autoguidance (KeyFace §3.7, Eq. 5: the reduced model is trained 16x fewer steps): at
``weak_fraction`` of the step budget the interpolation network is copied into its weak
twin, which the checkpoint holds next to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from avatar.generators.keyface import KeyFaceConfig, build_keyface
from avatar.generators.motion_vector import audio_frames, group_slices, motion_to_array
from avatar.training.loop import TrainReport, TrainSettings, TrainTask, begin, fit
from avatar.training.vasa import (COND_DROPOUT, GAZE_AUGMENT, GAZE_AUGMENT_PROBABILITY, PREFIX_DROPOUT,
                                  _loss_weights, _statistics, augment)
from avatar.training.windows import FIXED_WINDOWS, WindowSource, check_windows, fixed_picks, split_masks, window_starts

EMOTION_SECONDS = 2.0  # valence/arousal of a keyframe: the emotion stand-ins of the 2 s around it
INTERP_BATCH_FACTOR = 4  # interpolation stretches per keyframe window in a batch (they are short)
WEAK_STEP_WITHOUT_BUDGET = 200  # snapshot step when training has only a time limit


@dataclass
class KeySource(WindowSource):
    emotion: np.ndarray = None  # (T, 2) per-frame valence/arousal stand-ins


@dataclass
class KeyBatch:
    motion: np.ndarray  # (B, T, C) keyframes
    prefix: np.ndarray  # (B, P, C) the keyframes before them
    has_prefix: np.ndarray  # (B,)
    audio: np.ndarray  # (B, P+T, S*Ca) audio around each keyframe (raw)
    globals_: dict  # gaze (B, 2), distance (B, 1)
    emotion: np.ndarray  # (B, T, 2)


@dataclass
class GapBatch:
    motion: np.ndarray  # (B, S+1, C)
    audio: np.ndarray  # (B, S+1, (2k+1)*Ca): each frame's audio and its k neighbours each side


@dataclass
class Batch:
    key: KeyBatch
    gap: GapBatch


def emotion_track(seq, allowed: np.ndarray, half: int) -> np.ndarray:
    """(T, 2) valence/arousal per frame: :func:`emotion_proxy` of the frames within ``half``
    of each frame, computed inside each run of ``allowed`` frames (nothing of another split
    leaks in), with cumulative sums."""
    T = len(seq)
    out = np.zeros((T, 2), np.float32)
    smile = 0.5 * (seq.action("mouthSmileL") + seq.action("mouthSmileR"))
    frown = 0.5 * (seq.action("mouthFrownL") + seq.action("mouthFrownR"))
    speed = np.abs(np.diff(seq.rotation, axis=0)).mean(1)  # (T-1,) mean over axes, as emotion_proxy
    edges = np.flatnonzero(np.diff(np.concatenate([[0], allowed.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):  # runs [a, b)
        t = np.arange(a, b)
        lo, hi = np.maximum(a, t - half), np.minimum(b, t + half + 1)  # window [lo, hi)
        mean = lambda x, lo, hi: (np.concatenate([[0.0], np.cumsum(x)])[hi - a] -  # noqa: E731
                                  np.concatenate([[0.0], np.cumsum(x)])[lo - a]) / np.maximum(hi - lo, 1)
        v = np.tanh(4.0 * (mean(smile[a:b], lo, hi) - mean(frown[a:b], lo, hi)))
        sp = speed[a:max(a, b - 1)]  # diffs inside the run; the window's diffs are [lo, hi-1)
        s = mean(sp, lo, np.maximum(lo, hi - 1)) if len(sp) else np.zeros(len(t))
        s = np.where(hi - lo > 1, s, 0.0)
        out[a:b] = np.stack([v, np.tanh(400.0 * s - 1.0)], 1)
    return out


def keyface_sources(clips, split: str, span: int, half: int) -> list[KeySource]:
    from avatar.audio.sound import sound_frames

    out = []
    for clip, masks in zip(clips, split_masks(clips, span)):
        audio = np.concatenate([audio_frames(clip.features), sound_frames(clip.features)], 1).astype(np.float32)
        out.append(KeySource(motion_to_array(clip.motion), audio, masks[split], clip.motion,
                             emotion_track(clip.motion, masks[split], half)))
    return out


def key_picks(srcs, cfg: KeyFaceConfig) -> list[tuple[int, int]]:
    """(clip, first keyframe frame) of every keyframe window whose frames and audio lie in the split."""
    S, T = cfg.stride, cfg.keyframes
    return [(i, int(u) + S // 2) for i, src in enumerate(srcs) for u in window_starts(src, (T - 1) * S + S, 0)]


def gap_picks(srcs, cfg: KeyFaceConfig) -> list[tuple[int, int]]:
    return [(i, int(s)) for i, src in enumerate(srcs) for s in window_starts(src, cfg.stride + 1, 0)]


def cut_keys(srcs, picks, cfg: KeyFaceConfig) -> KeyBatch:
    from avatar.generators.keyface_model import keyframe_audio
    from avatar.training.windows import window_conditions

    S, T, P = cfg.stride, cfg.keyframes, cfg.prefix
    C = srcs[0].motion.shape[1]
    motion, prefix, has, audio, glob, emo = [], [], [], [], [], []
    for i, s in picks:
        src = srcs[i]
        frames = s + S * np.arange(T)
        before = s - S * np.arange(P, 0, -1)  # the P keyframes before
        first = before[0] - S // 2
        ok = first >= 0 and src.allowed[first:s].all()
        motion.append(src.motion[frames])
        prefix.append(src.motion[before] if ok else np.zeros((P, C), np.float32))
        has.append(ok)
        ka = keyframe_audio(src.audio, frames, S)  # (T, S*Ca)
        kb = keyframe_audio(src.audio, before, S) if ok else np.repeat(ka[:1], P, 0)  # as the first window
        audio.append(np.concatenate([kb, ka]))
        g = window_conditions(src.seq.slice(int(frames[0]), int(frames[-1]) + 1))
        glob.append({"gaze": g["gaze"], "distance": g["distance"]})
        emo.append(src.emotion[frames])
    return KeyBatch(np.stack(motion), np.stack(prefix), np.array(has), np.stack(audio).astype(np.float32),
                    {k: np.stack([g[k] for g in glob]) for k in glob[0]}, np.stack(emo))


def cut_gaps(srcs, picks, cfg: KeyFaceConfig) -> GapBatch:
    from avatar.generators.keyface_model import gap_audio

    L = cfg.stride + 1
    return GapBatch(np.stack([srcs[i].motion[s:s + L] for i, s in picks]),
                    np.concatenate([gap_audio(srcs[i].audio, [s], L, cfg.interp_audio_context) for i, s in picks]))


def augment_gaps(batch: GapBatch, rng) -> GapBatch:
    """Gaze offsets on whole stretches, as vasa's augmentation (the keyframes may look away)."""
    B = len(batch.motion)
    offset = rng.uniform(-GAZE_AUGMENT, GAZE_AUGMENT, size=(B, 2)).astype(np.float32)
    offset *= (rng.random(B) < GAZE_AUGMENT_PROBABILITY)[:, None]
    motion = batch.motion.copy()
    motion[:, :, group_slices()["gaze"]] += offset[:, None]
    return replace(batch, motion=motion)


def train_keyface(clips, out_path, config: KeyFaceConfig = KeyFaceConfig(),
                  settings: TrainSettings = TrainSettings(), log=print, on_evaluation=None) -> TrainReport:
    """Train both stages on ``clips`` and write the kept model to ``out_path``."""
    import torch

    fps, n_mels = begin(clips, settings)
    from avatar.audio.sound import SOUND_CHANNELS

    config = replace(config, fps=fps, n_mels=n_mels, sound_channels=len(SOUND_CHANNELS))
    S, T = config.stride, config.keyframes
    span, half = (T - 1) * S + S, int(round(EMOTION_SECONDS * fps / 2))
    train, select, held = (keyface_sources(clips, split, span, half) for split in ("train", "select", "val"))
    kt, ks, kh = (key_picks(s, config) for s in (train, select, held))
    gt, gs, gh = (gap_picks(s, config) for s in (train, select, held))
    check_windows(kt, ks, span, fps)
    log(f"{len(kt)} keyframe windows and {len(gt)} interpolation stretches to train on; selection: "
        f"{len(ks)} windows; held-out (reported only): {len(kh)}")
    model = build_keyface(config, **_statistics(train))
    weight, temporal = _loss_weights(torch)
    weak_step = (max(1, int(round(settings.max_steps * config.weak_fraction))) if settings.max_steps
                 else WEAK_STEP_WITHOUT_BUDGET)
    nb = settings.batch

    def sample(rng):
        keys = [kt[i] for i in rng.integers(len(kt), size=nb)]
        gaps = [gt[i] for i in rng.integers(len(gt), size=INTERP_BATCH_FACTOR * nb)]
        return Batch(augment(cut_keys(train, keys, config), rng), augment_gaps(cut_gaps(train, gaps, config), rng))

    def fixed(srcs, kp, gp):
        if not kp:
            return None
        r = np.random.default_rng(settings.seed)
        return Batch(cut_keys(srcs, fixed_picks(kp, r), config),
                     cut_gaps(srcs, fixed_picks(gp, r, INTERP_BATCH_FACTOR * FIXED_WINDOWS), config))

    def loss(batch, noise, rng):
        return keyframe_loss(model, batch.key, weight, rng, noise) + interp_loss(model, batch.gap, weight,
                                                                                 temporal, noise)

    def on_step(m, step):
        if step == weak_step:  # KeyFace §3.7 / Karras et al. 2024 Eq. 2: the weak, less-trained twin
            m.snapshot_weak(step)
            log(f"step {step}: weak interpolation model for autoguidance taken")

    task = TrainTask(model, sample, loss, select=fixed(select, ks, gs), held_out=fixed(held, kh, gh))
    return fit(task, out_path, settings, log=log, on_evaluation=on_evaluation, on_step=on_step,
               extra={"weak_step": weak_step})


def key_conditions(model, batch: KeyBatch):
    import torch

    from avatar.diffusion.conditions import Cond
    from avatar.diffusion.transformer import PREFIX
    from avatar.generators.keyface_model import EMOTION

    S = model.config["stride"]
    a = torch.from_numpy(batch.audio)
    B, L, _ = a.shape
    a = model.normalise_audio(a.view(B, L, S, -1)).view(B, L, -1)  # each stacked frame normalised
    values = {"audio": a, PREFIX: model.normalise(torch.from_numpy(batch.prefix)),
              EMOTION: torch.from_numpy(batch.emotion)}
    values.update(model.normalise_globals({k: torch.from_numpy(v) for k, v in batch.globals_.items()}))
    return Cond(values, {PREFIX: torch.from_numpy(batch.has_prefix)})


def keyframe_loss(model, batch: KeyBatch, weight, rng, generator=None):
    """EDM loss of the keyframe model (mouth weighted, KeyFace §3.6); dropout when ``rng``."""
    import torch

    from avatar.diffusion.edm import edm_loss
    from avatar.diffusion.guidance import dropout_conditions
    from avatar.diffusion.transformer import PREFIX
    from avatar.generators.keyface_model import EMOTION

    cond = key_conditions(model, batch)
    if rng is not None:
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        p = {"audio": COND_DROPOUT["audio"], "gaze": COND_DROPOUT["gaze"], "distance": COND_DROPOUT["distance"],
             EMOTION: COND_DROPOUT["emotion"], PREFIX: PREFIX_DROPOUT}
        cond = dropout_conditions(cond, p, g)
    x0 = model.normalise(torch.from_numpy(batch.motion))
    return edm_loss(model.key, x0, cond, generator=generator, weight=weight).mean()


def gap_conditions(model, batch: GapBatch):
    import torch

    from avatar.diffusion.conditions import Cond
    from avatar.generators.keyface_model import GIVEN, MASK

    x0 = model.normalise(torch.from_numpy(batch.motion))  # (B, S+1, C)
    B, L, _ = x0.shape
    mask = torch.zeros(B, L, 1)
    mask[:, 0] = mask[:, -1] = 1.0
    a = torch.from_numpy(batch.audio)
    a = model.normalise_audio(a.view(B, L, -1, model.audio_mean.shape[0])).view(B, L, -1)  # each stacked frame
    return x0, Cond.of(**{"audio": a, GIVEN: x0, MASK: mask})


def interp_loss(model, batch: GapBatch, weight, temporal, generator=None, net=None):
    """EDM loss of the interpolation model over the frames it fills (the given ones are
    exact: no error there), with the temporal term."""
    from avatar.diffusion.edm import edm_loss

    x0, cond = gap_conditions(model, batch)
    L = x0.shape[1]
    per = edm_loss(net or model.interp, x0, cond, generator=generator, weight=weight, temporal_weight=temporal)
    return per.mean() * L / (L - 2)  # mean over the L-2 filled frames
